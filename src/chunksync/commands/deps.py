"""`chunksync deps`: the dependencies a fleet of workers shares, and an operator's hand on them.

`chunksync deps` lists them (flow, budget, slots, limits, waits, probes, how long gated);
`deps set NAME --connections N --rate R --burst B` changes the limits while workers run;
`deps close NAME` stops every call to it and `deps open NAME` lets calls through again with a
full budget; `deps log [NAME]` shows who changed what. Every change is audited.
"""

from __future__ import annotations

import contextlib
import json
from typing import Annotated, Any

import typer

from chunksync.backends.base import Backend
from chunksync.cli import (
    Limit,
    ShowAll,
    cli,
    console,
    friendly,
    listed,
    open_app,
    print_json,
    say,
    say_more,
    spoken_move,
)
from chunksync.deps import operate, regroup, view
from chunksync.deps.model import Limits
from chunksync.exceptions import BackendError, ConfigurationError

deps_cli = typer.Typer(
    help="Dependencies (hosts, accounts) shared by every worker: list, set limits, open, close.",
    invoke_without_command=True,
    no_args_is_help=False,
)
cli.add_typer(deps_cli, name="deps")

Reason = Annotated[str, typer.Option(help="Why, for the audit log.")]
# What Ctrl-C during a move leaves (the mark freed for the next mover).
LEFT_TO_LEADER = (
    "a worker's maintenance leader moves the rest of its chunks within about a minute; until "
    "then `chunksync deps` shows it 'moving', and the chunks not yet moved wait"
)


@deps_cli.callback()
@friendly
def deps_list(
    ctx: typer.Context,
    limit: Limit = None,
    show_all: ShowAll = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Every dependency: flow, budget, slots, limits, waits, probes, how long gated (the gated
    and the busiest first)."""
    if ctx.invoked_subcommand is not None:
        return
    with open_app(create=False) as app:
        found = app.deps.all()
        now = app.manager.now()
    if as_json:
        print_json([view.shown(d, now) for d in found[:limit]])
        return
    if not found:
        console.print("no dependencies yet: a queue or a declaration makes one")
        return
    first = view.by_concern(found)
    shown = listed(first, limit, show_all)
    console.print(view.table(shown, now))
    say_more(len(shown), len(found), view.FIRST, narrower="")


@deps_cli.command("set")
@friendly
def deps_set(
    name: Annotated[str, typer.Argument(help="The dependency's name.")],
    connections: Annotated[
        int | None, typer.Option(help="Calls in flight at once, for the whole fleet.")
    ] = None,
    rate: Annotated[
        str | None, typer.Option(help="Calls per period: '250/s', '10000/10m', '5/min'.")
    ] = None,
    burst: Annotated[int | None, typer.Option(help="Calls at once after a quiet spell.")] = None,
    clear_connections: Annotated[
        bool, typer.Option("--clear-connections", help="No connection cap.")
    ] = False,
    clear_rate: Annotated[bool, typer.Option("--clear-rate", help="No rate limit.")] = False,
    clear_burst: Annotated[bool, typer.Option("--clear-burst", help="The default burst.")] = False,
    reason: Reason = "manual change",
) -> None:
    """Change a dependency's limits now; running workers follow at their next claim."""
    values = changes(
        {"connections": connections, "rate": rate, "burst": burst},
        {"connections": clear_connections, "rate": clear_rate, "burst": clear_burst},
    )
    with open_app(create=False) as app:
        change = operate.change_limits(app.deps, name, values, reason=reason)
        say(f"dependency {name}: {shown(change.before)} -> {shown(change.after)}")
        if change.moving:
            move_chunks(app.deps.backend, name)


def move_chunks(backend: Backend, name: str) -> None:
    """Move the dependency's open chunks to the claim group its new limits call for, saying so
    before and after. Ctrl-C leaves the rest to a worker's maintenance leader."""

    def interrupted() -> str:
        with contextlib.suppress(BackendError):
            regroup.free(backend, name)
        return f"the change stands, and {LEFT_TO_LEADER}"

    moving = "moving its open chunks to the claim group these limits call for"
    if spoken_move(moving, lambda: regroup.move(backend, name), interrupted) is None:
        say(
            "the move goes on elsewhere (a later change's command, or a worker's maintenance "
            "leader when this command sees one tenant's rows); until it ends `chunksync deps` "
            "shows the dependency 'moving'"
        )


def changes(given: dict[str, Any], cleared: dict[str, bool]) -> dict[str, Any]:
    """The keys to change: a value given sets it, a --clear-... option clears it (None)."""
    out: dict[str, Any] = {}
    for key, value in given.items():
        if value is not None and cleared[key]:
            raise ConfigurationError(f"give --{key} or --clear-{key}, not both")
        if value is not None or cleared[key]:
            out[key] = value
    return out


def shown(limits: Limits) -> str:
    parts = [f"{k} {'-' if v is None else v}" for k, v in limits.as_dict().items()]
    return ", ".join(parts)


@deps_cli.command("close")
@friendly
def deps_close(
    name: Annotated[str, typer.Argument(help="The dependency's name.")],
    reason: Reason = "manual close",
) -> None:
    """Stop every call to a dependency: none of its chunks is claimed until it is opened."""
    with open_app(create=False) as app:
        operate.set_flow(app.deps, name, stopped=True, reason=reason)
    say(f"dependency {name} is closed: no call goes through until `chunksync deps open`")


@deps_cli.command("open")
@friendly
def deps_open(
    name: Annotated[str, typer.Argument(help="The dependency's name.")],
    reason: Reason = "manual open",
) -> None:
    """Let calls to a dependency through again, with a full retry budget."""
    with open_app(create=False) as app:
        operate.set_flow(app.deps, name, stopped=False, reason=reason)
    say(f"dependency {name} is open: calls flow with a full budget")


@deps_cli.command("log")
@friendly
def deps_log(
    name: Annotated[str | None, typer.Argument(help="Only this dependency.")] = None,
    limit: Annotated[int, typer.Option(min=1)] = 50,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Who changed which dependency, when and why (the audit log), newest first."""
    with open_app(create=False) as app:
        rows = operate.history(app.backend, name, limit)
    entries = [entry(r) for r in rows]
    if as_json:
        print_json(entries)
        return
    for e in entries:
        details = e["details"] or {}
        say(
            f"{e['at']} {e['action']} {details.get('dependency', '?')} by {e['actor']} "
            f"({e['reason']}): {details.get('before')} -> {details.get('after')}"
        )
    say(f"{len(entries)} change(s)")


def entry(row: dict[str, Any]) -> dict[str, Any]:
    details = row.get("details")
    if isinstance(details, str):
        details = json.loads(details)
    return {
        "at": view.iso(float(row["at"])),
        "action": str(row["action"]),
        "actor": str(row["actor"]),
        "reason": str(row["reason"]),
        "details": details,
    }
