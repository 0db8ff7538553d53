"""`chunksync health`: per queue and for the system (or one tenant), with the health state,
its reasons and the dependencies' rows."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from chunksync.app import App
from chunksync.cli import (
    LISTED,
    Limit,
    ShowAll,
    cli,
    console,
    friendly,
    listed,
    open_app,
    print_json,
    resolve_queue,
    say,
    say_more,
)
from chunksync.commands import output
from chunksync.deps import view
from chunksync.exceptions import NotFound
from chunksync.models import Queue
from chunksync.observe import health, tenant_health


@cli.command("health")
@friendly
def health_cmd(
    queue: Annotated[str | None, typer.Option(help="One queue (id or name).")] = None,
    tenant: Annotated[
        str | None, typer.Option(help="Only this tenant: its state, queues and quotas.")
    ] = None,
    limit: Limit = None,
    show_all: ShowAll = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Health: the system's state (or, with --tenant, that tenant's state over its queues only)
    and per queue, newest first, its attempts, outcomes, categories and timing."""
    every = show_all or (as_json and limit is None)
    with open_app(create=False) as app:
        queues, total = _queues_of(app, queue, tenant, limit, every)
        summaries = health.queue_summaries(app.manager, queues)
        system = health.system_summary(app.manager)
        scoped = tenant_health.tenant_summary(app.manager, tenant, system) if tenant else None
        deps, now = app.deps.all(), app.manager.now()
    if as_json:
        data: dict[str, Any] = (
            {"system": system.as_dict()} if scoped is None else {"tenant": scoped.as_dict()}
        )
        data["queues"] = [s.as_dict() for s in summaries]
        data["dependencies"] = [view.shown(d, now) for d in deps]
        print_json(data)
        return
    shown = system if scoped is None else scoped
    colour = {"healthy": "green", "degraded": "yellow", "critical": "red"}[shown.state.value]
    console.print(
        (f"tenant {escape(scoped.tenant)}" if scoped else "system")
        + f": [bold {colour}]{shown.state.value}[/]"
        + "".join(f"\n  - {r}" for r in shown.reasons)
    )
    console.print(
        f"workers alive {system.workers_alive}, lost {system.workers_lost}; "
        f"backlog {shown.backlog}; "
        f"error rate 5m {_pct(shown.error_rate_5m)}, 60m {_pct(shown.error_rate_60m)}"
    )
    if scoped is not None:
        console.print(
            f"in flight {_of(scoped.in_flight, scoped.max_in_flight)}; "
            f"max queued {'-' if scoped.max_queued is None else scoped.max_queued}; "
            f"stuck {scoped.stuck}, dead {scoped.dead}"
        )
    for s in summaries:
        table = Table(title=escape(f"{s.name} ({s.status}, {s.progress:.0%})"))
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
            ("items/s", output.rate(s.items_per_s)),
        ]:
            table.add_row(label, str(value))
        for category, n in s.failures_by_category.items():
            table.add_row(f"failures: {category}", str(n))
        console.print(table)
    say_more(len(summaries), total, "queues' health (newest first)")
    if deps:
        first = view.by_concern(deps)[:LISTED]
        console.print(view.table(first, now))
        if len(first) < len(deps):
            say(f"{len(first)} of {len(deps):,} {view.FIRST} shown: `chunksync deps --all` for all")


def _queues_of(
    app: App, queue: str | None, tenant: str | None, limit: int | None, every: bool
) -> tuple[list[Queue], int]:
    """The queues whose health is shown, and how many there are: the one named, else the
    tenant's or every queue, cut to `limit` (LISTED) unless `every`. Without a tenant, a page of
    them is read: a queue's summary is a few reads, and at 50,000 queues all of them took 29 s."""
    if queue:
        one = app.manager.get_queue(resolve_queue(app, queue))
        if tenant is not None and one.tenant != tenant:
            raise NotFound(f"tenant '{tenant}' has no queue '{queue}'")
        return [one], 1
    if tenant is not None or every:
        queues = app.manager.list_queues(tenant=tenant)
        return listed(queues, limit, every), len(queues)
    return app.manager.queue_page(limit or LISTED)


def _of(n: int, quota: int | None) -> str:
    return f"{n} (no quota)" if quota is None else f"{n} of {quota}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"
