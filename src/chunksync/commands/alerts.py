"""`chunksync alerts` (evaluate now and list) and `chunksync sla` (a queue's backlog SLA, its
objectives, and how each objective stands)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from chunksync.cli import (
    Limit,
    ShowAll,
    cli,
    console,
    duration,
    friendly,
    listed,
    open_app,
    print_json,
    say_more,
)
from chunksync.commands.ids import queue_id
from chunksync.commands.output import row_json
from chunksync.durations import format_duration

if TYPE_CHECKING:
    from chunksync.observe.capacity import SloStatus


@cli.command("alerts")
@friendly
def alerts_cmd(
    evaluate: Annotated[
        bool, typer.Option("--evaluate", help="Evaluate the rules now (as the leader does).")
    ] = False,
    webhook: Annotated[
        str | None, typer.Option(help="POST fired and resolved alerts here (JSON).")
    ] = None,
    health_config: Annotated[
        Path | None, typer.Option("--health-config", help="TOML file with \\[health] thresholds.")
    ] = None,
    limit: Limit = None,
    show_all: ShowAll = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Alerts firing now (error rate, dead chunks, backlog SLA, no workers, auth failures),
    the critical first."""
    from chunksync.observe import alerts, health

    with open_app(create=False) as app:
        thresholds = health.load_thresholds(health_config) if health_config else app.settings.health
        if evaluate:
            config = alerts.AlertConfig(thresholds, webhook)
            # The webhook's posts waited for (the command ends next), once each: the command
            # posted each change itself as well as on evaluate's thread, twice in all.
            changed = alerts.evaluate(app.manager, config, background=False)
            for event in alerts.grouped(changed):  # as the log and the webhook have them
                if not as_json:  # the JSON document is the whole of stdout
                    console.print(f"{event.state}: {event.key}: {event.message}", markup=False)
        rows = alerts.firing(app.manager)
    if as_json:
        print_json([row_json(r) for r in rows[:limit]])
        return
    worst = sorted(rows, key=lambda r: r["severity"] != "critical")  # stable: their order kept
    shown = listed(worst, limit, show_all)
    for r in shown:
        console.print(f"[{r['severity']}] {r['key']}: {r['message']}", markup=False)
    console.print(f"{len(rows)} alert(s) firing")
    say_more(len(shown), len(rows), "alerts (the critical first)", narrower="")


@cli.command()
@friendly
def sla(
    queue: Annotated[
        str | None, typer.Argument(help="Queue id or name; omit to show every objective.")
    ] = None,
    seconds: Annotated[
        float | None,
        typer.Argument(
            help="Backlog age allowed (90s, 15m, 2h; bare: seconds); omit to remove the SLA.",
            parser=duration(),
            metavar="AGE",
        ),
    ] = None,
    wait: Annotated[
        float | None,
        typer.Option(
            help="Objective: p95 time from queued to first claim (30s, 2m).", parser=duration()
        ),
    ] = None,
    deadline: Annotated[
        float | None,
        typer.Option(help="Objective: p95 time from queued to completed (1h).", parser=duration()),
    ] = None,
    tenants: Annotated[bool, typer.Option("--tenants", help="Show per tenant.")] = False,
    limit: Limit = None,
    show_all: ShowAll = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Set a queue's backlog SLA (an alert fires when its oldest pending chunk is older), or its
    objectives (--wait, --deadline); with no queue, show each objective, those burning their
    budget first: the current figure, the error budget left and the burn-rate alerts."""
    from chunksync.observe.alerts import set_queue_sla
    from chunksync.observe.capacity import set_objectives, slo_report

    with open_app(create=False) as app:
        if queue is None:
            report = slo_report(app.manager, tenants=tenants)
        elif wait is not None or deadline is not None:
            set_objectives(app.manager, queue_id(app.manager, queue), wait, deadline)
            console.print(
                f"queue {queue}: wait objective {_shown(wait)}, deadline {_shown(deadline)}",
                markup=False,
            )
            return
        else:
            set_queue_sla(app.manager, queue_id(app.manager, queue), seconds)
            console.print(f"queue {queue}: SLA {_shown(seconds, 'removed')}", markup=False)
            return
    if as_json:
        print_json([s.as_dict() for s in report[:limit]])
        return
    _print_objectives(report, limit, show_all)


def _print_objectives(report: list[SloStatus], limit: int | None, show_all: bool) -> None:
    """Each objective's line, those burning their budget first, LISTED of them unless told."""
    burning = sorted(
        report, key=lambda s: (not s.alerts, 2.0 if s.budget_left is None else s.budget_left)
    )
    shown = listed(burning, limit, show_all)
    for s in shown:
        now = "no events" if s.bad_share_1h is None else f"{1 - s.bad_share_1h:.1%} within"
        left = "n/a" if s.budget_left is None else f"{s.budget_left:.0%}"
        firing = "; ".join(a["message"] for a in s.alerts) or "no burn alert"
        console.print(
            f"{s.subject} {s.objective}: {s.target:.0%} within {format_duration(s.threshold_s)}; "
            f"last hour {now} ({s.events_1h} events); budget left {left}; {firing}",
            markup=False,
        )
    if not report:
        console.print("no objectives: set one with chunksync sla QUEUE --wait 30s --deadline 1h")
    burning_first = "objectives (those burning their budget first)"
    say_more(len(shown), len(report), burning_first, narrower="--tenants for a line a tenant")


def _shown(seconds: float | None, none: str = "none") -> str:
    return none if seconds is None else format_duration(seconds)
