"""Mail commands: `sync` a mailbox into the store, `export` it back out, `demo-mail`.

`chunksync sync imap://alice@mail.example.com/INBOX --password-env IMAP_PASSWORD` plans one queue
per folder, runs workers until every queue is finished (a Rich progress bar: messages, MB,
messages/s, ETA), then prints the reconciliation: messages on the server, stored, difference.
A user mistake (bad URI, no password, a folder that does not exist, a server that cannot be
reached, a wrong password) ends in one sentence and exit status 1, never a traceback.
"""

from __future__ import annotations

import enum
import functools
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from chunksync.cli import cli, console, fail, open_app
from chunksync.commands import watching
from chunksync.errors import categorize
from chunksync.exceptions import ChunksyncError
from chunksync.models import DEFAULT_TENANT, ChunkStatus, ErrorCategory
from chunksync.processes import Helpers, Work
from chunksync.redact import redact, redact_url
from chunksync.runtime.progress import queues_finished
from chunksync.sources.base import kind_of
from chunksync.sources.mail import (
    MailSource,
    PlannedFolder,
    Reconciliation,
    RunSetup,
    SyncOptions,
    account_origin,
    plan_sync,
    progress,
    select_folders,
)

DEFAULT_CHUNK_MESSAGES = 500
LOCAL_CONCURRENCY = 2  # slots per process for Maildir and mbox
MESSAGES_PER_PROCESS = 2000  # a helper process costs ~0.3 s to start: worth it past this
# An IMAP download this large gets one process more than the cores: while one waits for the
# server or the store's write lock, the others keep both cores busy (docs/benchmarks.md).
EXTRA_PROCESS_MESSAGES = 50_000
TICK_SECONDS = 0.2  # progress bar refresh, at the most often
PROGRESS_CPU_SHARE = 0.1  # counting the store for the bar takes at most this share of the time
DONE_CHECK_SECONDS = 0.05
F = TypeVar("F", bound=Callable[..., Any])


class Deletions(enum.StrEnum):
    """What a message deleted on the server becomes in the store (see README, Email sync)."""

    KEEP = "keep"
    MIRROR = "mirror"


def explain(exc: BaseException, where: str) -> str:
    """One sentence for a failure a user can do something about."""
    if isinstance(exc, ChunksyncError):
        return str(exc)
    category = categorize(exc).category
    detail = redact(str(exc)) or type(exc).__name__
    if category is ErrorCategory.AUTH:
        return f"authentication failed for {where}: check the user and the password ({detail})"
    if category in (ErrorCategory.NETWORK, ErrorCategory.TIMEOUT):
        return f"cannot reach {where}: {detail}"
    if category is ErrorCategory.NOT_FOUND:
        return f"not found on {where}: {detail}"
    if category is ErrorCategory.RATE_LIMIT:
        return f"{where} refused more connections for now: {detail}"
    return f"{where}: {detail}"


def mail_errors(fn: F) -> F:
    """Every failure of a mail command ends in one sentence (the URI's host names the place)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort, KeyboardInterrupt):
            raise
        except Exception as exc:
            where = redact_url(str(kwargs.get("uri") or "the mailbox"))
            raise fail(explain(exc, where)) from None

    return wrapper  # type: ignore[return-value]


@cli.command()
@mail_errors
def sync(
    uri: Annotated[
        str, typer.Argument(help="imap://user@host/FOLDER, maildir:///path, mbox:///path")
    ],
    password_env: Annotated[
        str | None, typer.Option(help="Environment variable holding the IMAP password.")
    ] = None,
    password_file: Annotated[str | None, typer.Option(help="File holding the password.")] = None,
    password_cmd: Annotated[
        str | None, typer.Option(help="Command printing the password (like PassCmd).")
    ] = None,
    oauth2_cmd: Annotated[
        str | None, typer.Option(help="Command printing an OAuth2 access token (XOAUTH2).")
    ] = None,
    all_folders: Annotated[
        bool, typer.Option("--all-folders", help="Every selectable folder of the account.")
    ] = False,
    chunk_size: Annotated[int, typer.Option(min=1, help="Messages per chunk.")] = (
        DEFAULT_CHUNK_MESSAGES
    ),
    concurrency: Annotated[
        int | None,
        typer.Option(min=1, help="Worker slots in all (IMAP: at most the connection cap)."),
    ] = None,
    processes: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Worker processes (default: one per CPU core when there are thousands of "
            "messages to download; IMAP: one more past 50,000, and at most the connection cap).",
        ),
    ] = None,
    deletions: Annotated[
        Deletions,
        typer.Option(
            help="A message deleted on the server: keep it in the store, marked deleted with "
            "the time it went, or mirror the deletion.",
        ),
    ] = Deletions.KEEP,
    repair: Annotated[
        bool,
        typer.Option(
            "--repair", help="Re-list every folder and fix the store, even if it looks synced."
        ),
    ] = False,
    folder: Annotated[
        list[str] | None,
        typer.Option(help="Only folders matching this glob ('Archive/*'); repeatable."),
    ] = None,
    exclude: Annotated[
        list[str] | None,
        typer.Option(help="Leave out folders matching this glob ('Spam'); repeatable."),
    ] = None,
    watch: Annotated[
        bool, typer.Option("--watch", help="Keep running: store new mail as it arrives (IMAP).")
    ] = False,
    webhook: Annotated[
        str | None, typer.Option(help="With --watch: POST each event (message.new, ...) here.")
    ] = None,
    webhook_secret_env: Annotated[
        str | None, typer.Option(help="Environment variable holding the webhook's HMAC secret.")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the reconciliation as JSON (docs/cli.md).")
    ] = False,
    tenant: Annotated[
        str,
        typer.Option(
            help="The tenant whose mailbox it is (its queues and, on PostgreSQL, its store)."
        ),
    ] = DEFAULT_TENANT,
) -> None:
    """Sync a mailbox into the store: plan, run workers until synced, then reconcile
    (with --watch: then keep it synced, see docs/webhooks.md)."""
    options = SyncOptions(deletions.value, repair, account_origin(uri), tenant)
    target = watching.check(uri, watch, webhook, webhook_secret_env)
    with open_app() as app:
        credentials = _credentials(uri, password_env, password_file, password_cmd, oauth2_cmd)
        source = RunSetup(uri, 1, credentials, tenant)(app)
        cap = _connection_cap(source, uri)
        # Helpers start now, so that their start-up overlaps planning; dismissed if not needed.
        helpers = Helpers(app.url, max_processes(processes, cap) - 1)
        try:
            uris = select_folders(
                source, uri, every=all_folders, include=folder or (), exclude=exclude or ()
            )
            planned = plan_sync(app, source, uris, chunk_size=chunk_size, options=options)
            count = process_count(processes, planned, cap, network=source.kind == "imap")
            count = min(count, concurrency or count)  # at least one slot per process
            helpers.add(count - 1 - len(helpers.procs))  # the extra one is started only now
            setup = RunSetup(uri, count, credentials, tenant)
            setup(app)
            slots = min(concurrency or cap or LOCAL_CONCURRENCY * count, cap or sys.maxsize)
            dead = run_until_synced(app, source, planned, slots, setup, helpers, quiet=as_json)
            results = [source.reconcile(u) for u in uris]  # while the helpers stop
        finally:
            helpers.stop()
        if as_json:
            print(json.dumps(sync_json(uri, results, dead)))
        else:
            console.print(reconciliation_table(results))
        if target is not None:
            watching.watch(
                app,
                RunSetup(uri, 1, credentials, tenant)(app),
                uris,
                target,
                chunk_size,
                replace(options, repair=False),
            )
            return
    if dead:
        raise fail(f"{dead} chunk(s) failed for good: see `chunksync chunks --status dead`")
    report_difference(results, uri, repaired=repair)


def report_difference(results: Sequence[Reconciliation], uri: str, *, repaired: bool) -> None:
    """A difference left after a sync: what differs (folder, UIDs) and how to mend it, never a
    bare "run sync again" (a difference a sync leaves, the next one would leave too)."""
    off = [r for r in results if r.difference]
    if not off:
        return
    total = sum(abs(r.difference) for r in off)
    what = "; ".join(r.details or f"{r.folder}: {r.difference:+d}" for r in off)
    remedy = (
        "the server changed during the repair, or reports its count wrongly: run it again"
        if repaired
        else f"run `chunksync sync {redact_url(uri)} --repair` to re-list and fix the store"
    )
    raise fail(f"{total} message(s) differ between the source and the store ({what}): {remedy}")


def _credentials(uri: str, *secrets: str | None) -> Any:
    """IMAP: where the secret comes from, checked before connecting; other sources: None."""
    if kind_of(uri) != "imap":
        return None
    from chunksync.sources.imap import Credentials, parse_imap_uri

    target = parse_imap_uri(uri)
    credentials = Credentials(*secrets)
    credentials_now = credentials if credentials.given else Credentials.from_environment()
    credentials_now.secret(target.account)  # no password: say so before connecting
    return credentials if credentials.given else None


def _connection_cap(source: MailSource, uri: str) -> int | None:
    if source.kind != "imap":
        return None
    from chunksync.sources.imap import parse_imap_uri

    return parse_imap_uri(uri).connections


def max_processes(requested: int | None, cap: int | None) -> int:
    """The most processes a run may use: as asked, else one per core; never more than the
    connection cap (each process needs a connection)."""
    wanted = requested or os.cpu_count() or 1
    return max(1, min(wanted, cap or wanted))


def process_count(
    requested: int | None, planned: Sequence[PlannedFolder], cap: int | None, *, network: bool
) -> int:
    """The processes a run gets once planned: as asked, else one per core when there is enough
    to download to pay for starting them, and for a `network` source one more past
    EXTRA_PROCESS_MESSAGES; never more than the connection cap."""
    if requested is None:
        messages = sum(p.messages for p in planned if p.queue_id is not None)
        requested = min(os.cpu_count() or 1, max(1, messages // MESSAGES_PER_PROCESS))
        if network and messages >= EXTRA_PROCESS_MESSAGES:
            requested += 1
    return max_processes(requested, cap)


def run_until_synced(
    app: Any,
    source: MailSource,
    planned: Sequence[PlannedFolder],
    slots: int,
    setup: RunSetup,
    helpers: Helpers,
    *,
    quiet: bool = False,
) -> int:
    """Run workers on the planned queues until each is finished (in `setup.processes`
    processes: this one and helpers); returns the dead chunks. `quiet`: no progress shown
    (the output is a JSON document)."""
    queue_ids = [p.queue_id for p in planned if p.queue_id is not None]
    if not queue_ids:
        if not quiet:
            console.print("nothing to do: the mailbox has not changed since the last sync")
        return 0
    total = sum(p.messages for p in planned)
    per_process = max(1, slots // setup.processes)
    helpers.go(Work(tuple(queue_ids), per_process, setup), setup.processes - 1)
    worker = app.worker(concurrency=per_process, poll_s=0.05)
    started = time.monotonic()
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[mb]:.1f} MB"),
        TextColumn("{task.fields[rate]:.0f} msg/s"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, disable=quiet) as bar:
        task = bar.add_task("syncing", total=total, mb=0.0, rate=0.0)

        shown, every = [0.0], [TICK_SECONDS]

        def show() -> None:
            began = time.monotonic()
            now = progress(source, planned)
            shown[0] = time.monotonic()
            # A count reads each stored message's row (23 ms at 30,000 messages, every 0.2 s:
            # a tenth of a core): refreshed less often as the store grows.
            every[0] = max(TICK_SECONDS, (shown[0] - began) / PROGRESS_CPU_SHARE)
            bar.update(
                task,
                completed=now.downloaded,
                mb=now.stored_bytes / 1e6,
                rate=now.downloaded / max(shown[0] - started, 1e-6),
            )

        # No bar, no count; on a console that is not a terminal the bar is printed once, at
        # the end (100,000 messages: 22 counts, 0.5 s of this process, for nobody to see).
        live = not quiet and console.is_interactive

        def done() -> bool:  # looked at often, so that the run ends soon after its last chunk
            if live and time.monotonic() - shown[0] >= every[0]:
                show()
            return queues_finished(app.manager, queue_ids)

        worker.run(until=done, check_s=DONE_CHECK_SECONDS)
        if not quiet:
            show()
    return sum(app.manager.get_queue(q).totals.get(ChunkStatus.DEAD, 0) for q in queue_ids)


def sync_json(uri: str, results: Sequence[Reconciliation], dead: int) -> dict[str, Any]:
    """`sync --json`: each folder's reconciliation, the chunks that failed for good and the
    difference left (0 when the store holds exactly the source's messages)."""
    return {
        "uri": redact_url(uri),
        "folders": [
            {
                "folder": r.folder,
                "on_source": r.on_source,
                "stored": r.stored,
                "difference": r.difference,
                "stored_bytes": r.stored_bytes,
                "details": r.details or None,
            }
            for r in results
        ],
        "dead_chunks": dead,
        "difference": sum(abs(r.difference) for r in results),
    }


def reconciliation_table(results: Sequence[Reconciliation]) -> Table:
    table = Table("folder", "on source", "stored", "difference", "MB stored")
    for r in results:
        colour = "green" if r.difference == 0 else "red"
        table.add_row(
            r.folder,
            str(r.on_source),
            str(r.stored),
            f"[{colour}]{r.difference}[/]",
            f"{r.stored_bytes / 1e6:.1f}",
        )
    return table


@cli.command("export")
@mail_errors
def export_cmd(
    out: Annotated[Path, typer.Argument(help="Folder to write into (created).")],
    fmt: Annotated[str, typer.Option("--format", help="maildir or mbox.")] = "maildir",
    account: Annotated[
        str | None, typer.Option(help="Only this account (as `chunksync accounts` lists it).")
    ] = None,
    folder: Annotated[str | None, typer.Option(help="Only this folder.")] = None,
    include_deleted: Annotated[
        bool,
        typer.Option(
            "--include-deleted", help="Also the messages kept after the server deleted them."
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Write stored messages back out, byte-exact, as Maildirs or mbox files."""
    from chunksync.store import MessageStore
    from chunksync.store.accounts import resolve_account
    from chunksync.store.export import export

    with open_app(create=False) as app:
        store = MessageStore(app.backend)
        key = resolve_account(store, account) if account is not None else None
        count = export(store, out, fmt, account=key, folder=folder, include_deleted=include_deleted)
    if as_json:
        print(json.dumps({"exported": count, "out": str(out), "format": fmt}))
    else:
        console.print(f"exported {count} message(s) to {out} as {fmt}")


@cli.command("demo-mail")
@mail_errors
def demo_mail(
    path: Annotated[Path, typer.Argument(help="Where to write the sample Maildir.")],
    messages: Annotated[int, typer.Option(min=1, help="How many messages.")] = 300,
    sync_it: Annotated[bool, typer.Option("--sync/--no-sync", help="Sync it right away.")] = True,
) -> None:
    """Generate a sample Maildir (a few messages malformed) and sync it into the store."""
    import shutil

    from chunksync.demo_mail import generate

    if path.exists():
        shutil.rmtree(path)
    written = generate(path, messages)
    console.print(f"wrote {written} sample message(s) to {path}")
    if sync_it:
        sync(f"maildir://{path.resolve()}")
