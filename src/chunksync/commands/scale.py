"""`chunksync scale-advice`: worker slots each queue needs to keep its objectives, and whether
adding workers would help at all (chunksync.observe.capacity, docs/scaling.md)."""

from __future__ import annotations

from typing import Annotated

import typer

from chunksync.cli import (
    Limit,
    ShowAll,
    cli,
    console,
    friendly,
    listed,
    open_app,
    print_json,
    say_more,
)


@cli.command("scale-advice")
@friendly
def scale_advice_cmd(
    database_rate: Annotated[
        float | None,
        typer.Option(
            "--database-rate",
            min=0.001,
            help="The database's measured drain rate (chunks/s): past it, workers add nothing.",
        ),
    ] = None,
    horizon: Annotated[
        int, typer.Option(min=1, max=60, help="Minutes ahead the advice is for.")
    ] = 15,
    limit: Limit = None,
    show_all: ShowAll = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Per active queue: arrival rate and its 15/30/60-minute forecast, service time, backlog
    and time to drain it, the slots its p95 wait objective needs (Erlang C, floored by
    Little's law) and the verdict: add, remove, ok, or do not add (a dependency's limit or the
    database binds)."""
    from chunksync.observe.capacity import by_urgency, scale_advice

    with open_app(create=False) as app:
        advice = scale_advice(
            app.manager,
            database_per_s=database_rate,
            worker_timeout_s=app.settings.health.worker_timeout_s,
            horizon_min=horizon,
        )
    if as_json:
        print_json([a.as_dict() for a in advice[:limit]])
        return
    # The advice that asks for a change first: at 50,000 queues, one line each took 25 s.
    urgent = by_urgency(advice)
    shown = listed(urgent, limit, show_all)
    for a in shown:
        service = f"{a.service_s:.3g} s" if a.service_s else "unmeasured"
        drain = "never" if a.drain_s is None else f"{a.drain_s:.0f} s"
        ahead = ", ".join(f"{m} min {v:.3g}/s" for m, v in a.forecast_per_s.items())
        console.print(
            f"{a.subject}: {a.arrival_per_s:.3g} chunks/s ({ahead}), service {service}, "
            f"backlog {a.backlog} (drains in {drain}); slots {a.current_slots} -> "
            f"{a.recommended_slots} [{a.verdict}] {a.reason}",
            markup=False,
        )
    if not advice:
        console.print("no active queue")
    ok = sum(a.verdict == "ok" for a in advice)
    say_more(
        len(shown), len(advice), f"queues' advice (those asking for a change first; {ok:,} ok)"
    )
