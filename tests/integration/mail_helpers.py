"""Running a mail sync inside a test: plan, work until the queues finish, reconcile."""

from __future__ import annotations

from typing import Any

from chunksync.app import App
from chunksync.sources.mail import (
    DEFAULT_OPTIONS,
    MailSource,
    PlannedFolder,
    SyncOptions,
    mail_source,
    plan_sync,
)
from chunksync.store import MessageStore

RUN_TIMEOUT_SECONDS = 90.0


def run_sync(
    app: App,
    uri: str,
    *,
    chunk_size: int = 50,
    concurrency: int = 2,
    source: MailSource | None = None,
    options: SyncOptions = DEFAULT_OPTIONS,
    uris: list[str] | None = None,
    **worker_options: Any,
) -> list[PlannedFolder]:
    """Sync `uri` (or each of `uris`, in order) until its queues finish."""
    source = source or mail_source(app, uri)
    planned = plan_sync(app, source, uris or [uri], chunk_size=chunk_size, options=options)
    queues = [p.queue_id for p in planned if p.queue_id]
    if queues:
        options = {"poll_s": 0.02, "time_scale": 0.01, **worker_options}
        worker = app.worker(concurrency=concurrency, **options)
        worker.run_until_done(queues, timeout_s=RUN_TIMEOUT_SECONDS)
    return planned


def stored(
    app: App, account: str | None = None, *, include_deleted: bool = False
) -> dict[tuple[str, int], bytes]:
    """(folder, uid) -> raw bytes of every stored message (still on the server, by default)."""
    rows = MessageStore(app.backend).iter_messages(account, include_deleted=include_deleted)
    return {(r["folder"], int(r["uid"])): bytes(r["raw"]) for r in rows}
