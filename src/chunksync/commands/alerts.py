"""`chunksync alerts` (evaluate now and list) and `chunksync sla` (a queue's backlog SLA)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from chunksync.cli import cli, console, duration, friendly, open_app
from chunksync.commands.ids import queue_id
from chunksync.commands.output import row_json
from chunksync.durations import format_duration


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
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Alerts firing now (error rate, dead chunks, backlog SLA, no workers, auth failures)."""
    from chunksync.observe import alerts, health

    with open_app(create=False) as app:
        thresholds = health.load_thresholds(health_config) if health_config else app.settings.health
        if evaluate:
            config = alerts.AlertConfig(thresholds, webhook)
            for event in alerts.evaluate(app.manager, config):
                if webhook:
                    alerts.post_webhook(webhook, event)  # wait for it: the command ends next
                if not as_json:  # the JSON document is the whole of stdout
                    console.print(f"{event.state}: {event.key}: {event.message}", markup=False)
        rows = alerts.firing(app.manager)
    if as_json:
        console.print_json(json.dumps([row_json(r) for r in rows], default=str))
        return
    for r in rows:
        console.print(f"[{r['severity']}] {r['key']}: {r['message']}", markup=False)
    console.print(f"{len(rows)} alert(s) firing")


@cli.command()
@friendly
def sla(
    queue: Annotated[str, typer.Argument(help="Queue id or name.")],
    seconds: Annotated[
        float | None,
        typer.Argument(
            help="Backlog age allowed (90s, 15m, 2h; bare: seconds); omit to remove the SLA.",
            parser=duration(),
            metavar="AGE",
        ),
    ] = None,
) -> None:
    """Set a queue's backlog SLA: an alert fires when its oldest pending chunk is older."""
    from chunksync.observe.alerts import set_queue_sla

    with open_app(create=False) as app:
        set_queue_sla(app.manager, queue_id(app.manager, queue), seconds)
    shown = "removed" if seconds is None else format_duration(seconds)
    console.print(f"queue {queue}: SLA {shown}", markup=False)
