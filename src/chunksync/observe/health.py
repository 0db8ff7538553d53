"""Health answers: per queue, system-wide, and per hour; and the health state with its reasons.

Every figure is computed from the attempt health metrics, the chunks and the audit log through
the backend's named queries, so SQLite and PostgreSQL answer the same questions alike.
Percentiles are interpolated like PostgreSQL's percentile_cont.
"""

from __future__ import annotations

import enum
import math
import tomllib
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from chunksync.exceptions import ConfigurationError
from chunksync.manager import Manager
from chunksync.models import ErrorCategory, Outcome, Queue
from chunksync.observe import health_sql
from chunksync.retry import RetryBudgets
from chunksync.sources.base import default_dependency

THROUGHPUT_WINDOW_SECONDS = 300.0
SHORT_WINDOW_SECONDS = 300.0
LONG_WINDOW_SECONDS = 3600.0
WORKER_TIMEOUT_SECONDS = 60.0
TREND_WINDOW_SECONDS = 3600.0
TREND_BUCKET_SECONDS = 300.0
THRESHOLDS_ENV = "CHUNKSYNC_HEALTH_CONFIG"  # a TOML file with a [health] table
# HELD is not a failure: the gate kept the chunk from a stressed dependency, no call was made.
FAILED_OUTCOMES = frozenset({Outcome.RETRIED, Outcome.DEFERRED, Outcome.DEAD, Outcome.STUCK})
UNTIMED_OUTCOMES = frozenset({Outcome.STUCK, Outcome.HELD})  # rows without a processing time


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
    # A dependency is stressed when its own 5-minute error rate reaches error_rate_degraded
    # (over at least min_attempts attempts) or its retry budget is stressed. With
    # feed_retry_budgets, workers also charge that dependency's retry budget, so the retry
    # policy's stress awareness reads the very signal the health state reports.
    feed_retry_budgets: bool = False


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
    held: int  # attempt rows of chunks held by the gate (not attempted, not failures)
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
    dependencies: list[DependencyHealth] = field(default_factory=list)
    stressed_dependencies: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["state"] = self.state.value
        return data


@dataclass(frozen=True, slots=True)
class DependencyHealth:
    """One dependency (a host or account): its recent error rate and its retry budget."""

    dependency: str
    attempts_5m: int
    failures_5m: int
    error_rate_5m: float | None
    budget_tokens: float | None  # this process's budget; None when it has none
    budget_stressed: bool
    stressed: bool


@dataclass(frozen=True, slots=True)
class WorkerTrend:
    """One worker over the trend window: chunks per second and memory, overall and per bucket."""

    id: str
    host: str
    pid: int
    status: str
    alive: bool
    attempts: int
    completed: int
    chunks_per_s: float | None
    last_rss_bytes: int | None
    max_rss_bytes: int | None
    series: list[dict[str, Any]]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


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
    if manager.backend.sql_health_interface:  # get_queue_health_summary(): one implementation
        return health_sql.queue_summary(manager, q.id, THROUGHPUT_WINDOW_SECONDS)
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
        if r["outcome"] not in UNTIMED_OUTCOMES:
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
    timed_n = attempts - sum(by_outcome[o] for o in UNTIMED_OUTCOMES)
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
        held=by_outcome[Outcome.HELD],
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


def system_summary(
    manager: Manager,
    thresholds: HealthThresholds | None = None,
    *,
    budgets: RetryBudgets | None = None,
    dependency_of: DependencyNamer | None = None,
) -> SystemSummary:
    t = thresholds or HealthThresholds()
    deps = dependency_health(manager, t, dependency_of=dependency_of, budgets=budgets)
    if manager.backend.sql_health_interface:  # get_system_health_metrics()
        return health_sql.system_summary(manager, t, deps)
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
    stressed = [d.dependency for d in deps if d.stressed]
    state, reasons = assess(
        t, alive, backlog, oldest, n5, rate5, stuck, int(cats["auth"]), stressed
    )
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
        top_failure_categories=sorted(cats.items(), key=lambda kv: (-kv[1], kv[0]))[:5],
        recoveries_60m=int(row["recoveries"] or 0),
        stuck=stuck,
        dead=int(row["dead"] or 0),
        thresholds=t,
        dependencies=deps,
        stressed_dependencies=stressed,
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
    stressed_dependencies: Sequence[str] = (),
) -> tuple[HealthState, list[str]]:
    """The health state and every reason for it (critical beats degraded)."""
    critical: list[str] = []
    degraded: list[str] = []
    rate_flagged = (
        error_rate_5m is not None
        and attempts_5m >= t.min_attempts
        and error_rate_5m >= t.error_rate_degraded
    )
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
    if stressed_dependencies and not rate_flagged:  # else the system-wide rate says it already
        degraded.append(f"dependency stressed: {', '.join(stressed_dependencies)}")
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

# --- dependencies: the signal shared by the health state and the retry policy ------------------

DependencyNamer = Callable[[str, str], str]  # (queue source, kind) -> dependency


def dependency_health(
    manager: Manager,
    thresholds: HealthThresholds | None = None,
    *,
    dependency_of: DependencyNamer | None = None,
    budgets: RetryBudgets | None = None,
) -> list[DependencyHealth]:
    """Per dependency: the 5-minute error rate and (in a worker's process) its retry budget."""
    t = thresholds or HealthThresholds()
    name = dependency_of or default_dependency
    counts: dict[str, list[int]] = {}
    rows = manager.backend.fetch_all("health_dependency_window", {"window_s": SHORT_WINDOW_SECONDS})
    for r in rows:
        n = int(r["n"])
        c = counts.setdefault(name(str(r["source"]), str(r["kind"])), [0, 0])
        c[0] += n
        c[1] += n if r["outcome"] in FAILED_OUTCOMES else 0
    snapshot = budgets.snapshot() if budgets is not None else {}
    found = []
    for dep in sorted(set(counts) | set(snapshot)):
        n, failed = counts.get(dep, [0, 0])
        rate = failed / n if n else None
        budget_stressed = budgets is not None and dep in snapshot and budgets.get(dep).stressed
        by_rate = rate is not None and n >= t.min_attempts and rate >= t.error_rate_degraded
        found.append(
            DependencyHealth(
                dependency=dep,
                attempts_5m=n,
                failures_5m=failed,
                error_rate_5m=rate,
                budget_tokens=snapshot.get(dep),
                budget_stressed=budget_stressed,
                stressed=by_rate or budget_stressed,
            )
        )
    return found


def worker_trends(
    manager: Manager,
    *,
    window_s: float = TREND_WINDOW_SECONDS,
    bucket_s: float = TREND_BUCKET_SECONDS,
    worker_timeout_s: float = WORKER_TIMEOUT_SECONDS,
    limit: int = 50,
) -> list[WorkerTrend]:
    """Each recent worker: chunks per second and memory over the window, and per bucket."""
    series: dict[str, list[dict[str, Any]]] = {}
    params = {"window_s": window_s, "bucket_s": bucket_s}
    for r in manager.backend.fetch_all("health_worker_buckets", params):
        completed = int(r["completed"] or 0)
        series.setdefault(str(r["worker_id"]), []).append(
            {
                "t": float(r["t"]),
                "completed": completed,
                "chunks_per_s": completed / bucket_s,
                "max_rss_bytes": None if r["max_rss_bytes"] is None else int(r["max_rss_bytes"]),
            }
        )
    trends = []
    rows = manager.backend.fetch_all("health_worker_trends", {"window_s": window_s, "limit": limit})
    for r in rows:
        now, started = float(r["now"]), float(r["started_at"])
        span = min(window_s, now - started)
        completed = int(r["completed"] or 0)
        alive = r["status"] in ("running", "stopping") and (
            now - float(r["last_heartbeat_at"]) < worker_timeout_s
        )
        trends.append(
            WorkerTrend(
                id=str(r["id"]),
                host=str(r["host"]),
                pid=int(r["pid"]),
                status=str(r["status"]),
                alive=alive,
                attempts=int(r["attempts"] or 0),
                completed=completed,
                chunks_per_s=completed / span if span > 0 else None,
                last_rss_bytes=None if r["last_rss_bytes"] is None else int(r["last_rss_bytes"]),
                max_rss_bytes=None if r["max_rss_bytes"] is None else int(r["max_rss_bytes"]),
                series=series.get(str(r["id"]), []),
            )
        )
    return trends


def failures_over_time(
    manager: Manager, *, window_s: float = 24 * 3600.0, bucket_s: float = 3600.0
) -> list[dict[str, Any]]:
    """Per time bucket: attempts, completions and failures by category."""
    buckets: dict[float, dict[str, Any]] = {}
    params = {"window_s": window_s, "bucket_s": bucket_s}
    for r in manager.backend.fetch_all("health_buckets", params):
        t = float(r["t"])
        b = buckets.setdefault(t, {"t": t, "attempts": 0, "completed": 0, "failures": {}})
        n = int(r["n"])
        b["attempts"] += n
        if r["outcome"] == Outcome.COMPLETED:
            b["completed"] += n
        elif r["outcome"] in FAILED_OUTCOMES and r["category"]:
            b["failures"][r["category"]] = b["failures"].get(r["category"], 0) + n
    return [buckets[k] for k in sorted(buckets)]


# --- configuration -----------------------------------------------------------------------


def load_thresholds(path: str | Path) -> HealthThresholds:
    """Thresholds from a TOML file: the keys of HealthThresholds, in a [health] table."""
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigurationError(f"cannot read health thresholds from {path}: {exc}") from None
    return thresholds_from(data.get("health", data), where=str(path))


def thresholds_from(values: dict[str, Any], where: str = "options") -> HealthThresholds:
    """Thresholds from a mapping; unknown keys and wrong types are a configuration error."""
    known = {f.name: f for f in fields(HealthThresholds)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ConfigurationError(
            f"unknown health threshold(s) {', '.join(unknown)} in {where}: "
            f"known are {', '.join(known)}"
        )
    out: dict[str, Any] = {}
    for key, value in values.items():
        default = getattr(HealthThresholds(), key)
        ok = isinstance(value, type(default)) or (
            isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool)
        )
        if not ok:
            raise ConfigurationError(f"health threshold {key} in {where} must be like {default!r}")
        out[key] = float(value) if isinstance(default, float) else value
    return HealthThresholds(**out)
