"""`chunksync schedule`: chunksync commands run on a cron expression by the workers' leader.

`schedule add NAME --cron '*/15 * * * *' -- sync imaps://...` stores what follows `--`;
the maintenance leader of the running workers starts it at each tick, once for the fleet
(chunksync.schedules). `schedule list` shows each one's next tick and how its last run ended,
`schedule remove NAME` removes it, `schedule run NAME` makes its next tick now.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from chunksync import schedules
from chunksync.cli import cli, console, friendly, open_app, print_json, state

schedule_cli = typer.Typer(
    help="Commands run on a cron expression by the workers (once per tick for the fleet).",
    invoke_without_command=True,
    no_args_is_help=False,
)
cli.add_typer(schedule_cli, name="schedule")

AsJson = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def _short(epoch_s: float) -> str:
    return schedules.iso(epoch_s)[:19].replace("T", " ")


def _print(schedule: schedules.Schedule, what: str, as_json: bool) -> None:
    if as_json:
        print_json(schedule.as_dict())
        return
    console.print(
        f"schedule {schedule.name} {what}: next run {schedules.iso(schedule.next_at)}",
        markup=False,
        highlight=False,
    )


@schedule_cli.callback()
@friendly
def schedule_default(ctx: typer.Context, as_json: AsJson = False) -> None:
    """Every schedule: its cron, command, next tick and how its last run ended."""
    if ctx.invoked_subcommand is None:
        _list(as_json)


@schedule_cli.command("list")
@friendly
def schedule_list(as_json: AsJson = False) -> None:
    """Every schedule: its cron, command, next tick and how its last run ended."""
    _list(as_json)


def _list(as_json: bool) -> None:
    with open_app(create=False) as app:
        found = schedules.list_all(app.backend)
    if as_json:
        print_json([s.as_dict() for s in found])
        return
    if not found:
        console.print("no schedules: 'chunksync schedule add NAME --cron ... -- COMMAND' adds one")
        return
    table = Table("name", "cron", "command", "next run (UTC)", "runs", "last run")
    for s in found:
        last = "-" if s.last_at is None else f"{_short(s.last_at)} {s.last_status or ''}"
        table.add_row(s.name, s.cron, s.shown_command, _short(s.next_at), str(s.runs), last)
    console.print(table)


@schedule_cli.command("add")
@friendly
def schedule_add(
    name: Annotated[str, typer.Argument(help="The schedule's name.")],
    command: Annotated[
        list[str], typer.Argument(help="The chunksync command and its arguments, after '--'.")
    ],
    cron: Annotated[
        str, typer.Option("--cron", help="When, in UTC: '*/15 * * * *', '@hourly', '@daily'.")
    ],
    as_json: AsJson = False,
) -> None:
    """Run a chunksync command on a cron expression (the --app in effect goes with it)."""
    with open_app(create=False) as app:
        added = schedules.add(app.backend, name, cron, command, app=state.app_path)
    _print(added, "added", as_json)


@schedule_cli.command("remove")
@friendly
def schedule_remove(
    name: Annotated[str, typer.Argument(help="The schedule's name.")], as_json: AsJson = False
) -> None:
    """Remove a schedule (a run under way finishes)."""
    with open_app(create=False) as app:
        gone = schedules.remove(app.backend, name)
    if as_json:
        print_json({**gone.as_dict(), "removed": True})
        return
    console.print(f"schedule {gone.name} removed", markup=False, highlight=False)


@schedule_cli.command("run")
@friendly
def schedule_run(
    name: Annotated[str, typer.Argument(help="The schedule's name.")], as_json: AsJson = False
) -> None:
    """Run a schedule at the workers' next look (within a second or so), then on its cron."""
    with open_app(create=False) as app:
        soon = schedules.run_soon(app.backend, name)
    _print(soon, "due now", as_json)
