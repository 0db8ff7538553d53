"""The command line: `chunksync --db URL COMMAND`. Typer for the commands, Rich for the output.

A user mistake (bad URL, unknown queue, an intervention the state does not allow) ends in one
red sentence and exit status 1; a bad option in exit status 2 (Typer's usage error).
"""

from __future__ import annotations

import functools
import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from chunksync.app import DEFAULT_DATABASE_URL, App
from chunksync.deps import view
from chunksync.exceptions import BackendUnavailable, ChunksyncError
from chunksync.models import ChunkStatus, ErrorCategory, Queue
from chunksync.observe import health
from chunksync.redact import redact

cli = typer.Typer(
    help="chunksync: resilient, chunked background sync on SQLite or PostgreSQL.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console()
err = Console(stderr=True, soft_wrap=True)
F = TypeVar("F", bound=Callable[..., Any])


class State:
    db: str = DEFAULT_DATABASE_URL
    app_path: str | None = None


state = State()


def fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[bold red]error:[/] {redact(message)}", highlight=False)
    return typer.Exit(code)


def friendly(fn: F) -> F:
    """Turn chunksync's own errors into one clear sentence and a non-zero exit."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ChunksyncError as exc:
            raise fail(str(exc)) from None

    return wrapper  # type: ignore[return-value]


def open_app(*, create: bool = True) -> App:
    if state.app_path:
        from chunksync.loader import load_app

        return load_app(state.app_path, state.db)
    return App(state.db, create=create)


DB_WAIT_SECONDS = 60.0  # how long a starting worker waits for an unreachable database
DB_WAIT_MAX_STEP_SECONDS = 5.0


def open_app_waiting(wait_s: float) -> App:
    """The app, waiting up to `wait_s` for a database that cannot be reached yet: a worker
    started during a database restart or failover waits for it rather than exiting (a SIGTERM
    meanwhile still ends it at once, with status 0)."""
    deadline, step, said = time.monotonic() + wait_s, 0.25, False
    while True:
        try:
            return open_app()
        except BackendUnavailable as exc:
            if wait_s <= 0:
                raise
            if not said:
                err.print(
                    f"[yellow]waiting up to {wait_s:g} s for the database:[/] {redact(str(exc))}",
                    highlight=False,
                )
                said = True
            left = deadline - time.monotonic()
            if left <= 0:
                raise BackendUnavailable(f"{exc} (waited {wait_s:g} s)") from None
            time.sleep(min(step, left))
            step = min(step * 2, DB_WAIT_MAX_STEP_SECONDS)


@cli.callback()
def main_options(
    db: Annotated[
        str,
        typer.Option(
            "--db",
            envvar="CHUNKSYNC_DB",
            help="Database URL (sqlite:///file.db or postgresql://...).",
        ),
    ] = DEFAULT_DATABASE_URL,
    app: Annotated[
        str | None,
        typer.Option(
            "--app",
            envvar="CHUNKSYNC_APP",
            help="Your App, as module:attribute, for your handlers.",
        ),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log every retry.")] = False,
) -> None:
    state.db = db
    state.app_path = app
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


@cli.command()
@friendly
def init() -> None:
    """Create the database (or bring its schema up to date)."""
    with open_app() as app:
        version = app.backend.schema_version()
    console.print(f"database ready at schema version {version}")


@cli.command()
@friendly
def worker(
    concurrency: Annotated[
        int, typer.Option("--concurrency", "-c", min=1, help="Slots (threads).")
    ] = 4,
    queue: Annotated[str | None, typer.Option(help="Only this queue (id or name).")] = None,
    lease: Annotated[float, typer.Option(help="Lease in seconds.", min=0.1)] = 30.0,
    poll: Annotated[float, typer.Option(help="Poll interval in seconds.", min=0.01)] = 1.0,
    until_done: Annotated[
        bool, typer.Option("--until-done", help="Stop when the queue(s) finish.")
    ] = False,
    wait_for_db: Annotated[
        float,
        typer.Option(
            "--wait-for-db", min=0.0, help="Seconds to wait for an unreachable database at start."
        ),
    ] = DB_WAIT_SECONDS,
    deps: Annotated[
        list[Path] | None,
        typer.Option(
            "--deps",
            help='A TOML file whose [dependencies."NAME"] tables declare limits (repeatable).',
        ),
    ] = None,
) -> None:
    """Process chunks until stopped (SIGTERM or Ctrl-C stop gracefully)."""
    with open_app_waiting(wait_for_db) as app:
        for path in deps or []:
            from chunksync.loader import load_dependencies

            load_dependencies(app, path)
        queue_id = app.manager.get_queue(queue).id if queue else None
        w = app.worker(concurrency=concurrency, queue_id=queue_id, lease_s=lease, poll_s=poll)
        console.print(f"worker {w.id} running with {concurrency} slot(s); Ctrl-C stops it")
        if until_done:
            from chunksync.runtime import progress

            targets = [queue_id] if queue_id else [q.id for q in app.manager.list_queues()]
            with progress.bar(console, enabled=console.is_terminal) as on_progress:
                summary = w.run_until_done(targets, on_progress=on_progress)
            console.print(summary.text(), markup=False, highlight=False)
        else:
            w.run()
        console.print(f"worker stopped after {w.processed} chunk(s), {w.recoveries} recovered")


def queue_table(queues: list[Queue]) -> Table:
    table = Table(
        "queue",
        "name",
        "status",
        "progress",
        "pending",
        "processing",
        "completed",
        "dead",
        "cancelled",
    )
    for q in queues:
        t = {s.value: n for s, n in q.totals.items()}
        pct = f"{(q.done / q.total if q.total else 1):.0%} of {q.total}"
        table.add_row(
            q.id[:8], q.name, q.status.value, pct, *(str(t.get(s, 0)) for s in ChunkStatus)
        )
    return table


@cli.command()
@friendly
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Queues with their progress."""
    with open_app(create=False) as app:
        queues = app.manager.list_queues()
    if as_json:
        rows = [
            {
                "id": q.id,
                "name": q.name,
                "status": q.status.value,
                "source": q.source,
                "totals": {s.value: n for s, n in q.totals.items()},
            }
            for q in queues
        ]
        console.print_json(json.dumps(rows))
        return
    if not queues:
        console.print("no queues yet")
        return
    console.print(queue_table(queues))


@cli.command()
@friendly
def chunks(
    queue: Annotated[str | None, typer.Option(help="Queue id or name.")] = None,
    status: Annotated[ChunkStatus | None, typer.Option(help="Only this status.")] = None,
    category: Annotated[
        ErrorCategory | None, typer.Option(help="Only this last error category.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1)] = 50,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """List chunks, filtered by queue, status and error category."""
    with open_app(create=False) as app:
        queue_id = app.manager.get_queue(queue).id if queue else None
        found = app.manager.list_chunks(queue_id, status, category, limit)
    if as_json:
        console.print_json(
            json.dumps(
                [
                    {
                        "id": c.id,
                        "queue_id": c.queue_id,
                        "seq": c.seq,
                        "status": c.status.value,
                        "attempts": c.attempts,
                        "last_category": c.last_category,
                        "dead_reason": c.dead_reason,
                        "last_error": c.last_error,
                    }
                    for c in found
                ]
            )
        )
        return
    table = Table("chunk", "seq", "status", "attempts", "last category", "why / last error")
    for c in found:
        why = c.dead_reason or c.last_error or ""
        table.add_row(
            c.id, str(c.seq), c.status.value, str(c.attempts), c.last_category or "", why[:80]
        )
    console.print(table)


@cli.command()
@friendly
def retry(
    target: Annotated[str, typer.Argument(help="A dead chunk's id, or a queue (with --queue).")],
    queue: Annotated[
        bool, typer.Option("--queue", help="Retry every dead chunk of this queue.")
    ] = False,
    reason: Annotated[str, typer.Option(help="Why, for the audit log.")] = "manual retry",
) -> None:
    """Retry a dead chunk, or every dead chunk of a queue."""
    with open_app(create=False) as app:
        if queue:
            n = app.manager.retry_queue(app.manager.get_queue(target).id, reason=reason)
            console.print(f"{n} dead chunk(s) will run again")
        else:
            chunk = app.manager.retry_chunk(target, reason=reason)
            console.print(f"chunk {chunk.id} is {chunk.status} again")


@cli.command()
@friendly
def cancel(
    target: Annotated[str, typer.Argument(help="A chunk id, or a queue (with --queue).")],
    queue: Annotated[bool, typer.Option("--queue", help="Cancel the whole queue.")] = False,
    reason: Annotated[str, typer.Option(help="Why, for the audit log.")] = "manual cancel",
) -> None:
    """Cancel a chunk or a whole queue."""
    with open_app(create=False) as app:
        if queue:
            n = app.manager.cancel_queue(app.manager.get_queue(target).id, reason=reason)
            console.print(f"queue cancelled with {n} unfinished chunk(s)")
        else:
            app.manager.cancel_chunk(target, reason=reason)
            console.print(f"chunk {target} cancelled")


@cli.command()
@friendly
def pause(
    queue: Annotated[str, typer.Argument(help="Queue id or name.")], reason: str = "manual pause"
) -> None:
    """Pause a queue: no new chunk of it is claimed."""
    with open_app(create=False) as app:
        q = app.manager.pause_queue(app.manager.get_queue(queue).id, reason=reason)
    console.print(f"queue {q.name} is {q.status}")


@cli.command()
@friendly
def resume(
    queue: Annotated[str, typer.Argument(help="Queue id or name.")], reason: str = "manual resume"
) -> None:
    """Resume a paused queue."""
    with open_app(create=False) as app:
        q = app.manager.resume_queue(app.manager.get_queue(queue).id, reason=reason)
    console.print(f"queue {q.name} is {q.status}")


@cli.command()
@friendly
def release(
    target: Annotated[
        str, typer.Argument(help="A processing chunk's id, or a worker id (with --worker).")
    ],
    worker: Annotated[
        bool, typer.Option("--worker", help="Requeue everything a dead worker holds.")
    ] = False,
    force: Annotated[
        bool, typer.Option(help="With --worker: even if it still heartbeats.")
    ] = False,
    reason: Annotated[str, typer.Option(help="Why, for the audit log.")] = "manual release",
) -> None:
    """Force a stuck chunk back to pending, or requeue a dead worker's chunks."""
    with open_app(create=False) as app:
        if worker:
            n = app.manager.requeue_worker(target, reason=reason, force=force)
            console.print(f"{n} chunk(s) of worker {target} back to pending")
        else:
            app.manager.release_chunk(target, reason=reason)
            console.print(f"chunk {target} released")


@cli.command()
@friendly
def recover(
    worker_timeout: Annotated[
        float, typer.Option(help="Seconds without heartbeat before a worker is lost.")
    ] = 60.0,
) -> None:
    """Recover stuck chunks now (workers do this on their own before each claim)."""
    with open_app(create=False) as app:
        found = app.manager.recover_stuck(
            "operator",
            lambda qid: app.policy(app.manager.get_queue(qid).policy),
            worker_timeout_s=worker_timeout,
        )
    for r in found:
        console.print(
            f"chunk {r.chunk_id}: {r.reason} -> {r.to_status} (worker {r.previous_worker})"
        )
    console.print(f"{len(found)} chunk(s) recovered")


@cli.command("health")
@friendly
def health_cmd(
    queue: Annotated[str | None, typer.Option(help="One queue (id or name).")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Health: per queue (attempts, outcomes, categories, timing) and the system's state."""
    with open_app(create=False) as app:
        queues = [app.manager.get_queue(queue)] if queue else app.manager.list_queues()
        summaries = [health.queue_summary(app.manager, q) for q in queues]
        system = health.system_summary(app.manager)
        deps, now = app.deps.all(), app.manager.now()
    if as_json:
        data = {"system": system.as_dict(), "queues": [s.as_dict() for s in summaries]}
        data["dependencies"] = [view.shown(d, now) for d in deps]
        console.print_json(json.dumps(data, default=str))
        return
    colour = {"healthy": "green", "degraded": "yellow", "critical": "red"}[system.state.value]
    console.print(
        f"system: [bold {colour}]{system.state.value}[/]"
        + "".join(f"\n  - {r}" for r in system.reasons)
    )
    console.print(
        f"workers alive {system.workers_alive}, lost {system.workers_lost}; "
        f"backlog {system.backlog}; "
        f"error rate 5m {_pct(system.error_rate_5m)}, 60m {_pct(system.error_rate_60m)}"
    )
    for s in summaries:
        table = Table(title=f"{s.name} ({s.status}, {s.progress:.0%})")
        table.add_column("measure")
        table.add_column("value", justify="right")
        for label, value in [
            ("attempts", s.attempts),
            ("completed", s.completed_attempts),
            ("retried", s.retries),
            ("deferred", s.deferrals),
            ("held (dependency stressed)", s.held),
            ("dead", s.dead),
            ("recovered (stuck)", s.recoveries),
            ("success rate", _pct(s.success_rate)),
            ("avg processing s", _num(s.avg_processing_s)),
            ("p95 processing s", _num(s.p95_processing_s)),
            ("items/s", _num(s.items_per_s)),
        ]:
            table.add_row(label, str(value))
        for category, n in s.failures_by_category.items():
            table.add_row(f"failures: {category}", str(n))
        console.print(table)
    if deps:
        console.print(view.table(deps, now))


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


@cli.command()
@friendly
def demo(
    chunks: Annotated[int, typer.Option(min=1, help="Chunks to plan.")] = 200,
    failure_rate: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Share of attempts that fail.")
    ] = 0.25,
    seed: Annotated[int, typer.Option(help="Seed of the fault plan and of the jitter.")] = 7,
    concurrency: Annotated[int, typer.Option(min=1, help="Worker slots.")] = 4,
    time_scale: Annotated[
        float, typer.Option(min=0.0001, help="Multiply every retry delay by this.")
    ] = 0.01,
    crashes: Annotated[
        int, typer.Option(min=0, help="Chunks left behind by a simulated dead worker.")
    ] = 3,
    fresh: Annotated[bool, typer.Option(help="Start from an empty demo database.")] = False,
) -> None:
    """The main job on embedded SQLite: a faulty source, self-healing workers, and a report."""
    from chunksync.demo import run_demo

    if fresh:
        _remove_sqlite(state.db)
    with open_app() as app:
        run_demo(
            app,
            console,
            chunks=chunks,
            failure_rate=failure_rate,
            seed=seed,
            concurrency=concurrency,
            time_scale=time_scale,
            crashes=crashes,
        )


def _remove_sqlite(url: str) -> None:
    from chunksync.backends.sqlite import path_from_url

    if not url.startswith("sqlite:"):
        raise fail("--fresh only works on a SQLite demo database")
    path = path_from_url(url)
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)


def main() -> None:
    cli()


def _register_feature_commands() -> None:
    import importlib
    import pkgutil

    from chunksync import commands

    for info in pkgutil.iter_modules(commands.__path__):
        importlib.import_module(f"chunksync.commands.{info.name}")


_register_feature_commands()
