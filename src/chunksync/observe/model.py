"""The health vocabulary: states, thresholds, the summaries' shapes, and the health-state rules.

Plain data and one pure function (`assess`), with no database access, so the readers that fill
the summaries (chunksync.observe.readers), the trends (chunksync.observe.trends), the alerts and
the worker can all share them without importing one another. PostgreSQL's
`chunksync_assess_health()` mirrors `assess`; a test holds the two to the same answers.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from chunksync.models import Outcome

THROUGHPUT_WINDOW_SECONDS = 300.0
SHORT_WINDOW_SECONDS = 300.0
LONG_WINDOW_SECONDS = 3600.0
WORKER_TIMEOUT_SECONDS = 60.0
# HELD is not a failure: the gate kept the chunk from a stressed dependency, no call was made.
FAILED_OUTCOMES = frozenset({Outcome.RETRIED, Outcome.DEFERRED, Outcome.DEAD, Outcome.STUCK})
UNTIMED_OUTCOMES = frozenset({Outcome.STUCK, Outcome.HELD})  # rows without a processing time

DependencyNamer = Callable[[str, str], str]  # (queue source, kind) -> dependency


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
    # The `dependency_gated` alert fires when a dependency's shared gate has held its calls
    # (probing after faults, or stopped by an operator) for longer than this.
    dependency_gated_s: float = 300.0


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
