"""Objectives and scaling advice read from the database: the glue between the rollups and the
pure models (chunksync.observe.slo, chunksync.observe.forecast).

Every figure here is a few rollup rows' sum (see chunksync.observe.rollups), so `chunksync sla`,
`chunksync scale-advice`, the dashboard and each Prometheus scrape can ask as often as they
like. Per tenant figures add up the tenant's queues, each against its own queue's objective.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

from chunksync.deps.store import DependencyStore
from chunksync.exceptions import ConfigurationError
from chunksync.manager import Manager
from chunksync.observe import degradation, forecast, slo
from chunksync.observe.model import WORKER_TIMEOUT_SECONDS

TREND_HISTORY_SECONDS = 3 * 3600.0  # minutes replayed through the change-point test
RECENT_PATTERN_SECONDS = 900.0  # errors of this window are compared with the rest of history
ARRIVAL_HISTORY_SECONDS = 3600.0  # per-minute arrivals fed to Holt
SERVICE_WINDOW_SECONDS = 900.0  # the service time is the recent completions' mean
DEFAULT_WAIT_OBJECTIVE_SECONDS = 60.0  # for advice on a queue without an objective


def set_objectives(
    manager: Manager, queue: str, wait_s: float | None, deadline_s: float | None
) -> None:
    """Give a queue (id or name) a wait objective and a completion deadline (None: none)."""
    for what, value in (("wait objective", wait_s), ("deadline", deadline_s)):
        if value is not None and not value > 0:
            raise ConfigurationError(f"a queue's {what} must be a positive number of seconds")
    q = manager.get_queue(queue)
    manager.backend.execute(
        "slo_set", {"id": q.id, "wait_objective_s": wait_s, "deadline_s": deadline_s}
    )


@dataclass(frozen=True, slots=True)
class SloStatus:
    """One objective of one queue (or tenant): how it stands now and over its period."""

    subject: str  # "queue NAME" or "tenant NAME"
    objective: str  # "wait" or "deadline"
    threshold_s: float
    target: float
    events_1h: int
    bad_share_1h: float | None  # the current figure: share past the threshold, last hour
    budget_left: float | None  # share of the period's budget unspent
    burn_fast: float | None  # burn rate over the fast alert's long window (1 h)
    burn_slow: float | None  # ... and the slow one's (6 h)
    alerts: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


Counts = dict[tuple[str, str], tuple[int, int]]  # (subject, objective) -> (good, bad)


def _counts(rows: list[dict[str, Any]], names: dict[str, str], tenants: bool) -> Counts:
    out: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for r in rows:
        queue = names.get(str(r["queue_id"]))
        if queue is None:
            continue
        subject = f"tenant {r['tenant']}" if tenants else f"queue {queue}"
        claims, slow = int(r["claims"] or 0), int(r["slow"] or 0)
        done, late = int(r["completed"] or 0), int(r["late"] or 0)
        for name, good, bad in (("wait", claims - slow, slow), ("deadline", done - late, late)):
            out[(subject, name)][0] += good
            out[(subject, name)][1] += bad
    return {k: (g, b) for k, (g, b) in out.items()}


def slo_report(
    manager: Manager, period_s: float = slo.SLO_PERIOD_SECONDS, *, tenants: bool = False
) -> list[SloStatus]:
    """Each objective of each queue with one (or of each tenant with such queues)."""
    queues = manager.backend.fetch_all("slo_queues")
    names = {str(q["id"]): str(q["name"]) for q in queues}
    thresholds: dict[tuple[str, str], float] = {}
    for q in queues:
        subject = f"tenant {q['tenant']}" if tenants else f"queue {q['name']}"
        for name, column in (("wait", "wait_objective_s"), ("deadline", "deadline_s")):
            if q[column] is not None:
                thresholds.setdefault((subject, name), float(q[column]))
    windows: dict[float, Counts] = {}

    def counts(window_s: float) -> Counts:
        if window_s not in windows:
            rows = manager.backend.fetch_all("slo_window", {"window_s": window_s})
            windows[window_s] = _counts(rows, names, tenants)
        return windows[window_s]

    since = time.time() - period_s
    period = _counts(manager.backend.fetch_all("slo_period", {"since": since}), names, tenants)
    report: list[SloStatus] = []
    for (subject, name), threshold in sorted(thresholds.items()):
        objective = slo.Objective(name, threshold, period_s=period_s)
        key = (subject, name)
        good, bad = counts(slo.HOUR_S).get(key, (0, 0))

        def window(window_s: float, key: tuple[str, str] = key) -> tuple[int, int]:
            return counts(window_s).get(key, (0, 0))

        alerts = slo.burn_alerts(subject, objective, window)
        report.append(
            SloStatus(
                subject=subject,
                objective=name,
                threshold_s=threshold,
                target=objective.target,
                events_1h=good + bad,
                bad_share_1h=bad / (good + bad) if good + bad else None,
                budget_left=slo.budget_left(*period.get(key, (0, 0)), objective),
                burn_fast=slo.burn_rate(good, bad, objective),
                burn_slow=slo.burn_rate(*counts(slo.SLOW.long_s).get(key, (0, 0)), objective),
                alerts=[a.as_dict() for a in alerts],
            )
        )
    return report


def scale_advice(
    manager: Manager,
    *,
    database_per_s: float | None = None,
    worker_timeout_s: float = WORKER_TIMEOUT_SECONDS,
    horizon_min: int = forecast.FORECAST_MINUTES[0],
) -> list[forecast.Advice]:
    """Each active queue's advice: arrival forecast, service time, backlog, slots, verdict.
    `database_per_s`: the database's measured drain rate (docs/scaling.md), if known."""
    backend = manager.backend
    arrivals: dict[str, dict[int, int]] = defaultdict(dict)
    for r in backend.fetch_all("scale_arrivals", {"window_s": ARRIVAL_HISTORY_SECONDS}):
        arrivals[str(r["queue_id"])][int(r["t"])] = int(r["n"])
    service: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for r in backend.fetch_all("health_window_by_queue", {"window_s": SERVICE_WINDOW_SECONDS}):
        if r["outcome"] == "completed":
            service[str(r["queue_id"])][0] += float(r["processing_s"] or 0.0)
            service[str(r["queue_id"])][1] += int(r["n"])
    slots_row = backend.fetch_one("scale_slots", {"worker_timeout_s": worker_timeout_s})
    slots = int(slots_row["slots"] or 0) if slots_row else 0
    deps = {d.name: d for d in DependencyStore(backend).all()}
    now_min = int(time.time() // 60) * 60
    out: list[forecast.Advice] = []
    for q in backend.fetch_all("scale_queues"):
        qid = str(q["id"])
        holt = forecast.Holt()
        if qid in arrivals:
            for t in range(now_min - int(ARRIVAL_HISTORY_SECONDS), now_min, 60):
                holt.update(arrivals[qid].get(t, 0) / 60.0)
        else:  # what a history of zeros comes to, without a step a minute for each idle queue
            holt.level = 0.0
        total_s, n = service[qid]
        dep = deps.get(str(q["dependency"])) if q["dependency"] else None
        limits = forecast.Limits(
            dependency=dep.name if dep else None,
            connections=dep.limits.connections if dep else None,
            rate_per_s=dep.limits.rate.per_s if dep and dep.limits.rate else None,
            database_per_s=database_per_s,
        )
        wait = q["wait_objective_s"]
        out.append(
            forecast.advise(
                f"queue {q['name']}",
                arrival=holt,
                service_s=total_s / n if n else None,
                backlog=int(q["backlog"] or 0),
                current_slots=slots,
                wait_objective_s=float(wait) if wait else DEFAULT_WAIT_OBJECTIVE_SECONDS,
                drain_deadline_s=float(q["deadline_s"]) if q["deadline_s"] else None,
                limits=limits,
                horizon_min=horizon_min,
            )
        )
    return out


# The advice that asks for a change first: a fleet's listings show the first few of 50,000.
URGENCY = {"add": 0, "do_not_add": 1, "remove": 2, "ok": 3}


def by_urgency(advice: list[forecast.Advice]) -> list[forecast.Advice]:
    """The advice asking to add workers first, then bound ones, then to remove, then ok (each
    in its own order: the queues' names)."""
    return sorted(advice, key=lambda a: URGENCY.get(a.verdict, len(URGENCY)))


def degradations(manager: Manager) -> list[degradation.Evidence]:
    """Per queue, over the last three hours of minute rollups: a processing-time change point
    that still holds (the last minute still 1.5x the baseline), and new error patterns (the
    last 15 minutes against the rest). Replayed at each evaluation, so no state is kept."""
    rows = manager.backend.fetch_all("health_minutes", {"window_s": TREND_HISTORY_SECONDS})
    names = {str(r["id"]): str(r["name"]) for r in manager.backend.fetch_all("scale_queues")}
    minutes: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    errors: dict[str, list[dict[str, int]]] = defaultdict(lambda: [{}, {}])
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    recent_from = time.time() - RECENT_PATTERN_SECONDS
    for r in rows:
        qid, n = str(r["queue_id"]), int(r["n"])
        if qid not in names:
            continue
        if r["outcome"] not in ("stuck", "held"):
            cell = minutes[qid][int(r["t"])]
            cell[0] += float(r["processing_s"] or 0.0)
            cell[1] += n
        side = 1 if float(r["t"]) >= recent_from else 0
        totals[qid][side] += n
        if r["category"] and r["outcome"] in ("retried", "deferred", "dead", "stuck"):
            errors[qid][side][str(r["category"])] = errors[qid][side].get(str(r["category"]), 0) + n
    found: list[degradation.Evidence] = []
    for qid, series in minutes.items():
        subject = f"queue {names[qid]}"
        ph = degradation.PageHinkley(subject)
        alarm = None
        for minute in sorted(series):
            total_s, count = series[minute]
            alarm = ph.update(total_s / count, int(count)) or alarm
        last = series[max(series)]
        if alarm is not None and last[1] and last[0] / last[1] >= 1.5 * alarm.before:
            found.append(alarm)
    for qid, (before, recent) in errors.items():
        found += degradation.new_error_patterns(
            f"queue {names[qid]}", before, totals[qid][0], recent, totals[qid][1]
        )
    return found
