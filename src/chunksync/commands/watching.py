"""`chunksync sync --watch`: what the sync command does once synced, kept out of its module.

The options are checked before anything is synced (a webhook URL that is not http(s), a secret
variable that is not set, a mailbox that is not IMAP: one sentence each). Each event is printed
as a line and, with --webhook, posted signed (chunksync.webhooks) on a thread of its own.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from chunksync import webhooks
from chunksync.cli import console
from chunksync.exceptions import ConfigurationError
from chunksync.redact import redact


@dataclass(frozen=True, slots=True)
class WatchTarget:
    """Where a watch's events go (the secret is kept out of repr by webhooks.Target)."""

    webhook: webhooks.Target | None


def check(uri: str, watch: bool, webhook: str | None, secret_env: str | None) -> WatchTarget | None:
    """The watch's settings, checked before the sync starts; None without --watch."""
    if not watch:
        if webhook or secret_env:
            raise ConfigurationError("--webhook and --webhook-secret-env go with --watch")
        return None
    from chunksync.sources.imap.watch import watch_target

    watch_target(uri)
    if secret_env and not webhook:
        raise ConfigurationError("--webhook-secret-env needs --webhook")
    if webhook is None:
        return WatchTarget(None)
    secret = webhooks.secret_from_env(secret_env)
    return WatchTarget(webhooks.Target(webhooks.check_url(webhook), secret))


def describe(event: Mapping[str, Any]) -> str:
    data = event.get("data") or {}
    uid = f" uid {data['uid']}" if "uid" in data else ""
    extra = f": {redact(str(data['error']))}" if "error" in data else ""
    return f"{event['event']} {event['path']}{uid}{extra}"


def watch(
    app: Any, source: Any, uris: Sequence[str], target: WatchTarget, chunk_size: int, sync: Any
) -> None:
    """Watch until SIGTERM or Ctrl-C; then let the queued events go out and stop."""
    from chunksync.sources.imap.watch import Watch, WatchOptions, run_until_signalled

    sender = webhooks.Sender(target.webhook) if target.webhook is not None else None

    def emit(event: Mapping[str, Any]) -> None:
        console.print(describe(event), highlight=False)
        if sender is not None:
            sender.send(event)

    running = Watch(
        app, source, uris, emit, WatchOptions(chunk_size=chunk_size, sync=sync), threading.Event()
    )
    console.print(f"watching {len(uris)} folder(s): Ctrl-C to stop")
    try:
        run_until_signalled(running)
    finally:
        if sender is not None:
            sender.close()
    console.print(f"stopped watching ({running.mode}, {running.syncs} sync(s))")
