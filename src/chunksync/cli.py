"""The command line: `chunksync --db URL COMMAND`. Typer for the commands, Rich for the output.

A user mistake (bad URL, unknown queue, an intervention the state does not allow) ends in one
red sentence and exit status 1; a bad option in exit status 2 (Typer's usage error).
"""

from __future__ import annotations

import copy
import functools
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from typer.main import get_command, get_command_name

from chunksync import __version__
from chunksync.app import DEFAULT_DATABASE_URL, App
from chunksync.commands import output
from chunksync.config import CONFIG_ENV, FileConfig, load_config
from chunksync.durations import parse_duration
from chunksync.exceptions import (
    BackendUnavailable,
    ChunksyncError,
    ConfigurationError,
)
from chunksync.models import ChunkStatus, ErrorCategory, Queue
from chunksync.redact import redact
from chunksync.runtime.worker import HANDLER_TIMEOUT_SECONDS

cli = typer.Typer(
    help="chunksync: resilient, chunked background sync on SQLite or PostgreSQL.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
console = Console()
err = Console(stderr=True, soft_wrap=True)
F = TypeVar("F", bound=Callable[..., Any])
_R = TypeVar("_R")


class State:
    """The global options, resolved once: flag > environment > config file > default."""

    db: str = DEFAULT_DATABASE_URL
    db_from: str = "the default"
    app_path: str | None = None
    config: FileConfig = FileConfig()


state = State()


def fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[bold red]error:[/] {escape(redact(message))}", highlight=False)
    return typer.Exit(code)


def warn(message: str) -> None:
    err.print(f"[yellow]warning:[/] {escape(redact(message))}", highlight=False)


def say(text: str) -> None:
    """A sentence on stdout as written (no markup, one line however long), secrets redacted."""
    console.print(redact(text), markup=False, highlight=False, soft_wrap=True)


# A listing of queues shows this many rows unless told otherwise (`--limit`, `--all`): at 5,000
# tenants' ten folders, `status` printed 50,000 rows in 45 s, and `health` 800,000 lines.
LISTED = 50
Limit = Annotated[
    int | None,
    typer.Option(min=1, help=f"Show at most this many (default {LISTED}; --json: every one)."),
]
ShowAll = Annotated[bool, typer.Option("--all", help="Show every one.")]


def listed(rows: list[_R], limit: int | None, show_all: bool) -> list[_R]:
    """The rows a listing shows: all of them, or the first `limit` (LISTED by default)."""
    return rows if show_all else rows[: limit or LISTED]


def say_more(
    shown: int,
    total: int,
    what: str,
    *,
    narrower: str = "--tenant T for one tenant's",
    json: bool = True,
) -> None:
    """Under a listing cut short: how many there are, and how to see the rest."""
    if shown < total:
        ways = ["--limit N or --all for more", *([narrower] if narrower else [])]
        more = ", ".join(ways + (["--json for every one"] if json else []))
        say(f"{shown:,} of {total:,} {what} shown: {more}")


def spoken_move(
    moving: str,
    move: Callable[[], int | None],
    interrupted: Callable[[], str],
    *,
    quiet: bool = False,
) -> int | None:
    """A move of chunks between claim groups (chunksync.deps.regroup) that says it begins, then
    how many moved in how long (a million take about half a minute). Ctrl-C stops the move,
    not the change before it: `interrupted()` leaves the rest to the next mover and says how,
    and the command exits 130. Returns what `move` returned (None: the move goes on
    elsewhere, nothing said of it here)."""
    speak = (lambda _: None) if quiet else say
    speak(f"{moving} (Ctrl-C leaves the rest to a worker's maintenance leader)")
    started = time.monotonic()
    try:
        moved = move()
    except KeyboardInterrupt:
        speak(f"interrupted: {interrupted()}")
        raise typer.Exit(130) from None
    if moved is not None:
        speak(f"moved {moved:,} chunk(s) in {time.monotonic() - started:.1f} s")
    return moved


def friendly(fn: F) -> F:
    """Turn chunksync's own errors into one clear sentence and a non-zero exit."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ChunksyncError as exc:
            raise fail(str(exc)) from None

    return wrapper  # type: ignore[return-value]


def duration(bare: str = "s") -> Callable[[Any], float]:
    """A Typer parser for a duration option (45s, 15m, 12h, 30d, 2w; bare: in `bare`)."""

    def parse(value: Any) -> float:
        try:
            return parse_duration(value, bare=bare)
        except ConfigurationError as exc:
            raise typer.BadParameter(str(exc)) from None

    return parse


def open_app(*, create: bool = True) -> App:
    """The App the global options and the config file name, with the config's policies and
    dependencies declared on it."""
    if not create:
        _check_database_exists()
    if state.app_path:
        from chunksync.loader import load_app

        app = load_app(state.app_path, state.db)
    else:
        app = App(state.db, create=create)
    try:
        _apply_config(app)
    except BaseException:
        app.close()
        raise
    return app


def _apply_config(app: App) -> None:
    from chunksync.loader import load_dependencies
    from chunksync.retry import load_policy

    for path in state.config.policies:
        app.registry.add_policy(load_policy(path))
    for path in state.config.dependencies:
        load_dependencies(app, path)


def _check_database_exists() -> None:
    """A command that reads an existing SQLite database names the one it looked for, where
    that name came from, and how to name another: creating a second, empty one by following
    a bare 'run init' is the newcomer's classic mistake."""
    if not state.db.startswith("sqlite:"):
        return
    from chunksync.backends.sqlite import path_from_url

    try:
        path = path_from_url(state.db)
    except ConfigurationError:
        return  # opening it says what is wrong with the URL
    if path == ":memory:" or Path(path).exists():
        return
    raise ConfigurationError(
        f"no database at {Path(path).expanduser().resolve()} ({state.db}, from {state.db_from}): "
        "name yours with --db URL, CHUNKSYNC_DB or 'database' in chunksync.toml, "
        "or create this one with 'chunksync init'"
    )


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
                    f"[yellow]waiting up to {wait_s:g} s for the database:[/] "
                    f"{escape(redact(str(exc)))}",
                    highlight=False,
                )
                said = True
            left = deadline - time.monotonic()
            if left <= 0:
                raise BackendUnavailable(f"{exc} (waited {wait_s:g} s)") from None
            time.sleep(min(step, left))
            step = min(step * 2, DB_WAIT_MAX_STEP_SECONDS)


def _version(value: bool) -> None:
    if value:
        console.print(f"chunksync {__version__}", highlight=False)
        raise typer.Exit()


@cli.callback()
def main_options(
    ctx: typer.Context,
    db: Annotated[
        str | None,
        typer.Option(
            "--db",
            envvar="CHUNKSYNC_DB",
            help="Database URL (sqlite:///file.db or postgresql://...). "
            f"Default: 'database' in chunksync.toml, else {DEFAULT_DATABASE_URL}.",
            show_default=False,
        ),
    ] = None,
    app: Annotated[
        str | None,
        typer.Option(
            "--app",
            envvar="CHUNKSYNC_APP",
            help="Your App, as module:attribute, for your handlers.",
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            envvar=CONFIG_ENV,
            help="Config file (default: ./chunksync.toml, else "
            "$XDG_CONFIG_HOME/chunksync/chunksync.toml).",
        ),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log every retry.")] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    try:
        state.config = load_config(config)
        ctx.default_map = command_defaults(ctx, state.config)
    except ChunksyncError as exc:
        raise fail(str(exc)) from None
    state.db, state.db_from = _resolve_db(db)
    state.app_path = app or state.config.app
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def _resolve_db(flag_or_env: str | None) -> tuple[str, str]:
    if flag_or_env is not None:
        env = os.environ.get("CHUNKSYNC_DB")
        return flag_or_env, "CHUNKSYNC_DB" if env == flag_or_env else "--db"
    if state.config.database is not None:
        return state.config.database, f"'database' in {state.config.path}"
    return DEFAULT_DATABASE_URL, "the default"


def command_defaults(ctx: typer.Context, config: FileConfig) -> dict[str, dict[str, Any]]:
    """The config file's [COMMAND] tables as Click's default_map, each key checked against
    the command's options so that a typo is one sentence, not a silently ignored line."""
    group: Any = ctx.command  # a Click group (Typer ships its own Click)
    found = config.defaults()
    if any(group.get_command(ctx, name) is None for name in found):
        group = get_command(cli)  # built with the command it runs alone: all of them
    for name, options in found.items():
        command = group.get_command(ctx, name)
        if command is None:
            raise ConfigurationError(
                f"config file {config.path}: [{name}] names no command; commands are "
                f"{', '.join(sorted(group.list_commands(ctx)))}"
            )
        valid = sorted(p.name for p in command.params if p.name and p.param_type_name == "option")
        for key in options:
            if key not in valid:
                raise ConfigurationError(
                    f"config file {config.path}: table [{name}] has an unknown key "
                    f"'{key.replace('_', '-')}'; valid keys are "
                    f"{', '.join(v.replace('_', '-') for v in valid)}"
                )
    return found


@cli.command()
@friendly
def init() -> None:
    """Create the database (or bring its schema up to date)."""
    with open_app() as app:
        version = app.backend.schema_version()
    console.print(f"database ready at schema version {version} ({redact(state.db)})")


@cli.command()
@friendly
def worker(
    concurrency: Annotated[
        int, typer.Option("--concurrency", "-c", min=1, help="Slots (threads).")
    ] = 4,
    queue: Annotated[str | None, typer.Option(help="Only this queue (id or name).")] = None,
    lease: Annotated[float, typer.Option(help="Lease (30s, 2m...).", parser=duration())] = 30.0,
    poll: Annotated[
        float, typer.Option(help="Poll interval (1s, 500ms is 0.5).", parser=duration())
    ] = 1.0,
    until_done: Annotated[
        bool, typer.Option("--until-done", help="Stop when the queue(s) finish.")
    ] = False,
    wait_for_db: Annotated[
        float,
        typer.Option(
            "--wait-for-db",
            help="How long to wait for an unreachable database at start.",
            parser=duration(),
        ),
    ] = DB_WAIT_SECONDS,
    handler_timeout: Annotated[
        float,
        typer.Option(
            "--handler-timeout",
            help="A handler running longer is stopped and its chunk retried as a timeout "
            "(heartbeats do not extend it; 0 turns it off).",
            parser=duration(),
        ),
    ] = HANDLER_TIMEOUT_SECONDS,
    deps: Annotated[
        list[Path] | None,
        typer.Option(
            "--deps",
            help='A TOML file whose [dependencies."NAME"] tables declare limits (repeatable).',
        ),
    ] = None,
    db_connections: Annotated[
        int | None,
        typer.Option(
            "--db-connections",
            min=1,
            help="PostgreSQL connections its slots and heartbeat may use at once (default: "
            "slots + 1, at most 4; one more listens for work).",
        ),
    ] = None,
) -> None:
    """Process chunks until stopped (SIGTERM or Ctrl-C stop gracefully)."""
    if lease <= 0 or poll <= 0:
        raise fail("--lease and --poll must be more than 0")
    with open_app_waiting(wait_for_db) as app:
        for path in deps or []:
            from chunksync.loader import load_dependencies

            load_dependencies(app, path)
        queue_id = app.manager.get_queue(resolve_queue(app, queue)).id if queue else None
        _warn_unhandled(app, queue_id)
        w = app.worker(
            concurrency=concurrency,
            queue_id=queue_id,
            lease_s=lease,
            poll_s=poll,
            handler_timeout_s=handler_timeout or None,
            db_connections=db_connections,
        )
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


def _warn_unhandled(app: App, queue_id: str | None) -> None:
    """A worker pointed at queues it has no handler for would sit idle and end with "0
    chunks" without a word: say so, one line a source kind (a fleet split by kinds has
    thousands of another's queues), and list the kinds it can run."""
    from chunksync.sources.base import kind_of

    queues = [app.manager.queue_row(queue_id)] if queue_id else app.manager.list_queues()
    kinds = app.registry.kinds()
    unhandled: dict[str, list[str]] = {}
    for q in queues:
        if q.status.value in ("active", "paused") and kind_of(q.source) not in kinds:
            unhandled.setdefault(kind_of(q.source), []).append(q.name)
    for kind, names in sorted(unhandled.items()):
        which = (
            f"queue {names[0]}" if len(names) == 1 else f"{len(names):,} queues ({names[0]}, ...)"
        )
        warn(
            f"no handler for {which} (source kind '{kind}'): this worker has handlers for "
            f"{', '.join(kinds) or 'nothing'}; pass --app module:app to load yours"
        )


def progress_text(q: Queue) -> str:
    """'40% of 200'; a cancelled queue says how much was completed, not "100%"."""
    if q.status.value == "cancelled":
        return f"cancelled, {q.totals.get(ChunkStatus.COMPLETED, 0)} of {q.total} completed"
    return f"{(q.done / q.total if q.total else 1):.0%} of {q.total}"


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
        table.add_row(
            q.id[:8],
            escape(q.name),
            q.status.value,
            progress_text(q),
            *(str(t.get(s, 0)) for s in ChunkStatus),
        )
    return table


@cli.command()
@friendly
def status(
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's queues.")] = None,
    limit: Limit = None,
    show_all: ShowAll = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Queues with their progress, newest first."""
    with open_app(create=False) as app:
        if tenant is not None or show_all or (as_json and limit is None):
            queues = app.manager.list_queues(tenant=tenant)
            total = len(queues)
        else:  # one page, its totals counted for its queues alone
            queues, total = app.manager.queue_page(limit or LISTED)
    if as_json:
        print_json([output.queue_json(q) for q in queues[:limit]])
        return
    if not queues:
        console.print("no queues yet")
        return
    shown = listed(queues, limit, show_all)
    console.print(queue_table(shown))
    say_more(len(shown), total, "queues (newest first)")


def print_json(data: Any) -> None:
    """JSON on stdout, as is: indented, no Rich markup, highlighting or wrapping. Written
    straight out: Rich's `print_json` parsed and re-rendered it, 53 s for 50,000 queues."""
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")
    sys.stdout.flush()


@cli.command()
@friendly
def chunks(
    queue: Annotated[str | None, typer.Option(help="Queue id or name.")] = None,
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's chunks.")] = None,
    status: Annotated[ChunkStatus | None, typer.Option(help="Only this status.")] = None,
    category: Annotated[
        ErrorCategory | None, typer.Option(help="Only this last error category.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1)] = 50,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """List chunks, filtered by queue, tenant, status and error category; a pending chunk's
    next run."""
    with open_app(create=False) as app:
        queue_id = app.manager.get_queue(resolve_queue(app, queue)).id if queue else None
        found = app.manager.list_chunks(queue_id, status, category, limit, tenant=tenant)
        now = app.manager.now()
    if as_json:
        print_json([output.chunk_json(c) for c in found])
        return
    pending = any(c.status is ChunkStatus.PENDING for c in found)
    table = Table()
    table.add_column("chunk", overflow="fold")  # never cut: it is copied into commands
    for title in ("seq", "status", "attempts", *(["next run"] if pending else [])):
        table.add_column(title)
    table.add_column("last category")
    table.add_column("why / last error")
    for c in found:
        why = c.dead_reason or c.last_error or ""
        nxt = [output.next_run_text(c, now)] if pending else []
        table.add_row(
            c.id,
            str(c.seq),
            c.status.value,
            str(c.attempts),
            *nxt,
            c.last_category or "",
            escape(redact(why[:80])),
        )
    console.print(table)


def resolve_queue(app: App, text: str | None) -> str:
    """A queue's id, name or a unique prefix of its id (as `status` prints it)."""
    from chunksync.commands.ids import queue_id

    assert text is not None
    return queue_id(app.manager, text)


def main() -> None:
    from chunksync.processes import command_of

    only_the_command(cli, command_of(sys.argv[1:])[0])()


def only_the_command(whole: typer.Typer, name: str | None) -> typer.Typer:
    """The CLI with only the command (or group of commands) a command line names. Typer reads
    every command's signature and evaluates its annotations before it parses a command line:
    44 ms of each command's start for chunksync's 94 functions, of which a command line runs
    one. Anything else gets them all: no command or a name that is none of ours (the usage, or
    the suggestion of a near name), and shell completion."""
    if name is None or any(key.endswith("_COMPLETE") for key in os.environ):
        return whole
    commands = [c for c in whole.registered_commands if _command_name(c) == name]
    groups = [g for g in whole.registered_groups if g.name == name]
    if len(commands) + len(groups) != 1:
        return whole
    one = copy.copy(whole)
    one.registered_commands, one.registered_groups = commands, groups
    return one


def _command_name(info: Any) -> str | None:
    if info.name:
        return str(info.name)
    return None if info.callback is None else get_command_name(info.callback.__name__)


def _register_feature_commands() -> None:
    import importlib
    import pkgutil

    from chunksync import commands

    for info in pkgutil.iter_modules(commands.__path__):
        importlib.import_module(f"chunksync.commands.{info.name}")


_register_feature_commands()
