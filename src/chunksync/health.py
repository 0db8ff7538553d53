"""Health answers: per queue, system-wide, and per hour; and the health state with its reasons.

Every figure is computed from the attempt health metrics, the chunks and the audit log through
the backend's named queries, so SQLite and PostgreSQL answer the same questions alike.
Percentiles are interpolated like PostgreSQL's percentile_cont.
"""

from __future__ import annotations

import enum
import math
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from chunksync.manager import Manager
from chunksync.models import ErrorCategory, Outcome, Queue

THROUGHPUT_WINDOW_SECONDS = 300.0
SHORT_WINDOW_SECONDS = 300.0
LONG_WINDOW_SECONDS = 3600.0
WORKER_TIMEOUT_SECONDS = 60.0
FAILED_OUTCOMES = frozenset({Outcome.RETRIED, Outcome.DEFERRED, Outcome.DEAD, Outcome.STUCK})


class HealthState(enum.StrEnum):
    HEALTHY = "healthy"
    DEGRADED = "degraded"
    CRITICAL = "critical"


@dataclass(frozen=True, slots=True)
class HealthThresholds:
    """When the system stops being healthy. Explicit so that operators can tune them."""

    error_rate_degraded: float = 0.10
    error_rate_critical: float = 0.50
    min_attempts: int = 20  # below this many attempts in 5 minutes, error rates say nothing
    backlog_age_degraded_s: float = 3600.0
    stuck_degraded: int = 1
    worker_timeout_s: float = WORKER_TIMEOUT_SECONDS


@dataclass(frozen=True, slots=True)
class QueueSummary:
    queue_id: str
    name: str
    status: str
    totals: dict[str, int]
    progress: float
    attempts: int
    completed_attempts: int
    failed_attempts: int
    success_rate: float | None
    retries: int
    deferrals: int
    dead_attempts: int
    stuck_recovered: int
    failures_by_category: dict[str, int]
    avg_processing_s: float | None
    p95_processing_s: float | None
    items_per_s: float | None
    avg_efficiency: float | None
    total_retry_delay_s: float
    throughput_chunks_per_s: float | None
    oldest_pending_age_s: float | None
    stuck: int
    dead: int
    recoveries: int
    eta_s: float | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class SystemSummary:
    state: HealthState
    reasons: list[str]
    workers_alive: int
    workers_lost: int
    active_queues: int
    backlog: int
    oldest_pending_age_s: float | None
    error_rate_5m: float | None
    error_rate_60m: float | None
    attempts_5m: int
    attempts_60m: int
    top_failure_categories: list[tuple[str, int]]
    recoveries_60m: int
    stuck: int
    dead: int
    thresholds: HealthThresholds = field(default_factory=HealthThresholds)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["state"] = self.state.value
        return data


def _f(value: Any) -> float | None:
    return None if value is None else float(value)


def percentile_cont(manager: Manager, queue_id: str, fraction: float) -> float | None:
    row = manager.backend.fetch_one("health_queue_timed_count", {"queue_id": queue_id})
    n = int(row["n"]) if row else 0
    if n == 0:
        return None
    position = fraction * (n - 1)
    low = math.floor(position)
    rows = manager.backend.fetch_all(
        "health_queue_processing_at", {"queue_id": queue_id, "offset": low}
    )
    values = [float(r["processing_s"]) for r in rows]
    if len(values) == 1 or position == low:
        return values[0]
    return values[0] + (values[1] - values[0]) * (position - low)


def queue_summary(manager: Manager, queue: Queue | str) -> QueueSummary:
    q = manager.get_queue(queue) if isinstance(queue, str) else manager.get_queue(queue.id)
    rows = manager.backend.fetch_all("health_queue_attempts", {"queue_id": q.id})
    by_outcome: Counter[str] = Counter()
    by_category: Counter[str] = Counter()
    timed_s = items = completed_s = completed_items = delay_total = 0.0
    eff_sum = eff_n = 0.0
    for r in rows:
        n = int(r["n"])
        by_outcome[r["outcome"]] += n
        if r["outcome"] in FAILED_OUTCOMES and r["category"]:
            by_category[r["category"]] += n
        if r["outcome"] != Outcome.STUCK:
            timed_s += float(r["processing_s"] or 0.0)
        items += float(r["items"] or 0)
        delay_total += float(r["retry_delay_s"] or 0.0)
        if r["outcome"] == Outcome.COMPLETED:
            completed_s += float(r["processing_s"] or 0.0)
            completed_items += float(r["items"] or 0)
            if r["efficiency"] is not None:
                eff_sum += float(r["efficiency"]) * n
                eff_n += n
    attempts = sum(by_outcome.values())
    completed = by_outcome[Outcome.COMPLETED]
    failed = sum(by_outcome[o] for o in FAILED_OUTCOMES)
    timed_n = attempts - by_outcome[Outcome.STUCK]
    extra = manager.backend.fetch_one(
        "health_queue_chunks", {"queue_id": q.id, "window_s": THROUGHPUT_WINDOW_SECONDS}
    )
    assert extra is not None
    now = float(extra["now"])
    first = _f(extra["first_started_at"])
    window = min(THROUGHPUT_WINDOW_SECONDS, now - first) if first is not None else None
    recent = int(extra["recent_completed"] or 0)
    throughput = recent / window if window and window > 0 and recent else None
    totals = {status.value: n for status, n in q.totals.items()}
    remaining = totals.get("pending", 0) + totals.get("processing", 0)
    return QueueSummary(
        queue_id=q.id,
        name=q.name,
        status=q.status.value,
        totals=totals,
        progress=(q.done / q.total) if q.total else 1.0,
        attempts=attempts,
        completed_attempts=completed,
        failed_attempts=failed,
        success_rate=(completed / attempts) if attempts else None,
        retries=by_outcome[Outcome.RETRIED],
        deferrals=by_outcome[Outcome.DEFERRED],
        dead_attempts=by_outcome[Outcome.DEAD],
        stuck_recovered=by_outcome[Outcome.STUCK],
        failures_by_category=dict(by_category.most_common()),
        avg_processing_s=(timed_s / timed_n) if timed_n else None,
        p95_processing_s=percentile_cont(manager, q.id, 0.95),
        items_per_s=(completed_items / completed_s) if completed_s > 0 else None,
        avg_efficiency=(eff_sum / eff_n) if eff_n else None,
        total_retry_delay_s=delay_total,
        throughput_chunks_per_s=throughput,
        oldest_pending_age_s=_f(extra["oldest_pending_age_s"]),
        stuck=int(extra["stuck"] or 0),
        dead=totals.get("dead", 0),
        recoveries=int(extra["recoveries"] or 0),
        eta_s=(remaining / throughput)
        if throughput and remaining
        else (0.0 if not remaining else None),
    )


def _window(manager: Manager, window_s: float) -> tuple[int, int, Counter[str]]:
    attempts = failures = 0
    categories: Counter[str] = Counter()
    for r in manager.backend.fetch_all("health_window", {"window_s": window_s}):
        n = int(r["n"])
        attempts += n
        if r["outcome"] in FAILED_OUTCOMES:
            failures += n
            if r["category"]:
                categories[r["category"]] += n
    return attempts, failures, categories


def system_summary(manager: Manager, thresholds: HealthThresholds | None = None) -> SystemSummary:
    t = thresholds or HealthThresholds()
    row = manager.backend.fetch_one(
        "health_system",
        {"worker_timeout_s": t.worker_timeout_s, "window_s": LONG_WINDOW_SECONDS},
    )
    assert row is not None
    n5, f5, _ = _window(manager, SHORT_WINDOW_SECONDS)
    n60, f60, cats = _window(manager, LONG_WINDOW_SECONDS)
    alive, lost = int(row["workers_alive"] or 0), int(row["workers_lost"] or 0)
    backlog, stuck = int(row["backlog"] or 0), int(row["stuck"] or 0)
    oldest = _f(row["oldest_pending_age_s"])
    rate5 = f5 / n5 if n5 else None
    state, reasons = assess(t, alive, backlog, oldest, n5, rate5, stuck, int(cats["auth"]))
    return SystemSummary(
        state=state,
        reasons=reasons,
        workers_alive=alive,
        workers_lost=lost,
        active_queues=int(row["active_queues"] or 0),
        backlog=backlog,
        oldest_pending_age_s=oldest,
        error_rate_5m=rate5,
        error_rate_60m=f60 / n60 if n60 else None,
        attempts_5m=n5,
        attempts_60m=n60,
        top_failure_categories=cats.most_common(5),
        recoveries_60m=int(row["recoveries"] or 0),
        stuck=stuck,
        dead=int(row["dead"] or 0),
        thresholds=t,
    )


def assess(
    t: HealthThresholds,
    workers_alive: int,
    backlog: int,
    oldest_pending_age_s: float | None,
    attempts_5m: int,
    error_rate_5m: float | None,
    stuck: int,
    auth_failures_60m: int,
) -> tuple[HealthState, list[str]]:
    """The health state and every reason for it (critical beats degraded)."""
    critical: list[str] = []
    degraded: list[str] = []
    if backlog and workers_alive == 0:
        critical.append(f"no live workers while {backlog} chunks wait")
    if error_rate_5m is not None and attempts_5m >= t.min_attempts:
        pct = f"{error_rate_5m:.0%} of {attempts_5m} attempts failed in the last 5 minutes"
        if error_rate_5m >= t.error_rate_critical:
            critical.append(pct)
        elif error_rate_5m >= t.error_rate_degraded:
            degraded.append(pct)
    if oldest_pending_age_s is not None and oldest_pending_age_s > t.backlog_age_degraded_s:
        degraded.append(f"the oldest pending chunk has waited {oldest_pending_age_s:.0f} s")
    if stuck >= t.stuck_degraded:
        degraded.append(f"{stuck} chunk(s) stuck past their lease")
    if auth_failures_60m:
        degraded.append(f"{auth_failures_60m} authentication failure(s) in the last hour")
    if critical:
        return HealthState.CRITICAL, critical + degraded
    if degraded:
        return HealthState.DEGRADED, degraded
    return HealthState.HEALTHY, []


def hourly(manager: Manager, window_s: float = 24 * 3600.0) -> list[dict[str, Any]]:
    """Per hour: attempts, successes, failures by category, average time, items per second."""
    hours: dict[int, dict[str, Any]] = {}
    for r in manager.backend.fetch_all("health_hourly", {"window_s": window_s}):
        h = hours.setdefault(
            int(r["hour"]),
            {
                "hour": int(r["hour"]),
                "attempts": 0,
                "successes": 0,
                "failures": {},
                "processing_s": 0.0,
                "items": 0,
            },
        )
        n = int(r["n"])
        h["attempts"] += n
        h["processing_s"] += float(r["processing_s"] or 0.0)
        h["items"] += int(r["items"] or 0)
        if r["outcome"] == Outcome.COMPLETED:
            h["successes"] += n
        elif r["outcome"] in FAILED_OUTCOMES and r["category"]:
            h["failures"][r["category"]] = h["failures"].get(r["category"], 0) + n
    for h in hours.values():
        h["avg_processing_s"] = h["processing_s"] / h["attempts"] if h["attempts"] else None
        h["items_per_s"] = h["items"] / h["processing_s"] if h["processing_s"] > 0 else None
    return [hours[k] for k in sorted(hours)]


CATEGORIES = [c.value for c in ErrorCategory]
