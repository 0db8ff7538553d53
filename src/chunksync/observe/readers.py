"""Health readers: the two ways a database answers the queue and system health questions.

`SqlInterfaceReader` asks PostgreSQL's SQL health interface (get_queue_health_summary(),
get_system_health_metrics()), so that Python, psql and RPC callers share one implementation.
`NamedQueryReader` computes the same figures in Python from the attempt rollups
(chunksync.observe.rollups), the chunks and the audit log through the backend's named queries;
percentiles are interpolated like PostgreSQL's percentile_cont (or read from the rollups'
histogram past a size, as the SQL interface does). `reader_for` picks one from the capability
the backend declares (`sql_health_interface`), never from its dialect; the contract tests
hold both to the same figures.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections import Counter
from dataclasses import dataclass
from typing import Any, Protocol

from chunksync.backends.base import Backend
from chunksync.exceptions import NotFound
from chunksync.manager import Manager
from chunksync.models import Outcome, Queue
from chunksync.observe import rollups
from chunksync.observe.model import (
    FAILED_OUTCOMES,
    LONG_WINDOW_SECONDS,
    SHORT_WINDOW_SECONDS,
    THROUGHPUT_WINDOW_SECONDS,
    UNTIMED_OUTCOMES,
    DependencyHealth,
    HealthState,
    HealthThresholds,
    QueueSummary,
    SystemSummary,
    assess,
)


class HealthReader(Protocol):
    """Answers the two health questions; the dependencies' health is measured by the caller."""

    def queue_summary(self, manager: Manager, queue_id: str) -> QueueSummary: ...

    def queue_summaries(self, manager: Manager, queue_ids: list[str]) -> list[QueueSummary]:
        """Those of `queue_ids` that exist, in order."""
        ...

    def system_summary(
        self, manager: Manager, t: HealthThresholds, dependencies: list[DependencyHealth]
    ) -> SystemSummary: ...


def reader_for(backend: Backend) -> HealthReader:
    """The reader for this backend, chosen from the capability it declares."""
    return SQL_INTERFACE if backend.sql_health_interface else NAMED_QUERIES


def _f(value: Any) -> float | None:
    return None if value is None else float(value)


# --- the SQL health interface ------------------------------------------------------------------


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str | bytes) else value


def _fill(cls: type[Any], row: dict[str, Any], **overrides: Any) -> Any:
    """Build a summary dataclass from a function's row; fields the SQL does not return keep
    their dataclass default."""
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name in overrides:
            values[f.name] = overrides[f.name]
        elif f.name in row:
            values[f.name] = row[f.name]
    return cls(**values)


class SqlInterfaceReader:
    """Health from the database's own functions: one implementation for every client."""

    def queue_summary(self, manager: Manager, queue_id: str) -> QueueSummary:
        # The function counts the queue's chunks itself: no get_queue before it (a second count).
        row = manager.backend.fetch_one(
            "pg_queue_health_summary",
            {"queue_id": queue_id, "window_s": THROUGHPUT_WINDOW_SECONDS},
        )
        if row is None or row["queue_id"] is None:
            raise NotFound(f"no queue with id '{queue_id}'")
        return self._summary(row)

    def queue_summaries(self, manager: Manager, queue_ids: list[str]) -> list[QueueSummary]:
        params = {
            "queue_ids": manager.backend.list_param(queue_ids),
            "window_s": THROUGHPUT_WINDOW_SECONDS,
        }
        rows = manager.backend.fetch_all("pg_queues_health_summary", params)
        return [self._summary(row) for row in rows if row["queue_id"] is not None]

    @staticmethod
    def _summary(row: dict[str, Any]) -> QueueSummary:
        return _fill(  # type: ignore[no-any-return]
            QueueSummary,
            row,
            queue_id=str(row["queue_id"]),
            totals=_json(row["totals"]),
            failures_by_category=_json(row["failures_by_category"]),
            total_retry_delay_s=float(row["total_retry_delay_s"] or 0.0),
        )

    def system_summary(
        self, manager: Manager, t: HealthThresholds, dependencies: list[DependencyHealth]
    ) -> SystemSummary:
        stressed = [d.dependency for d in dependencies if d.stressed]
        params = {
            "worker_timeout_s": t.worker_timeout_s,
            "error_rate_degraded": t.error_rate_degraded,
            "error_rate_critical": t.error_rate_critical,
            "min_attempts": t.min_attempts,
            "backlog_age_degraded_s": t.backlog_age_degraded_s,
            "stuck_degraded": t.stuck_degraded,
            "stressed": stressed,
        }
        row = manager.backend.fetch_one("pg_system_health_metrics", params)
        assert row is not None
        return _fill(  # type: ignore[no-any-return]
            SystemSummary,
            row,
            state=HealthState(row["state"]),
            reasons=list(row["reasons"]),
            top_failure_categories=[(c, int(n)) for c, n in _json(row["top_failure_categories"])],
            thresholds=t,
            dependencies=dependencies,
            stressed_dependencies=stressed,
        )


# --- computed through named queries ----------------------------------------------------------


@dataclass(slots=True)
class AttemptTally:
    """A queue's attempt rows added up: counts by outcome and category, times, items."""

    by_outcome: Counter[str] = dataclasses.field(default_factory=Counter)
    by_category: Counter[str] = dataclasses.field(default_factory=Counter)
    timed_s: float = 0.0
    completed_s: float = 0.0
    completed_items: float = 0.0
    delay_total: float = 0.0
    eff_sum: float = 0.0
    eff_n: float = 0.0
    first_started_at: float | None = None

    @property
    def timed_n(self) -> int:
        """Attempts with a processing time (every outcome but the untimed ones)."""
        return sum(self.by_outcome.values()) - sum(self.by_outcome[o] for o in UNTIMED_OUTCOMES)

    def add(self, r: dict[str, Any]) -> None:
        n = int(r["n"])
        self.by_outcome[r["outcome"]] += n
        if r["outcome"] in FAILED_OUTCOMES and r["category"]:
            self.by_category[r["category"]] += n
        if r["outcome"] not in UNTIMED_OUTCOMES:
            self.timed_s += float(r["processing_s"] or 0.0)
        self.delay_total += float(r["retry_delay_s"] or 0.0)
        if r["outcome"] == Outcome.COMPLETED:
            self.completed_s += float(r["processing_s"] or 0.0)
            self.completed_items += float(r["items"] or 0)
            self.eff_sum += float(r["efficiency_sum"] or 0.0)
            self.eff_n += float(r["efficiency_n"] or 0)
        started = r.get("first_started_at")
        if started is not None:
            first = self.first_started_at
            self.first_started_at = float(started) if first is None else min(first, float(started))


def percentile_cont(manager: Manager, queue_id: str, fraction: float) -> float | None:
    """A queue's processing time at this fraction, interpolated like percentile_cont."""
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


def queue_percentile(manager: Manager, queue_id: str, timed: int, fraction: float) -> float | None:
    """A queue's processing time at this fraction: exact from the raw rows while the queue has
    few timed attempts (or none of its raw rows are left), else from its rollup histogram."""
    if not timed:
        return None
    if timed <= rollups.EXACT_PERCENTILE_MAX_ATTEMPTS:
        exact = percentile_cont(manager, queue_id, fraction)
        if exact is not None:
            return exact
    rows = manager.backend.fetch_all("health_queue_latency", {"queue_id": queue_id})
    return rollups.percentile_from_bins(((int(r["bin"]), int(r["n"])) for r in rows), fraction)


def _throughput(chunks: dict[str, Any]) -> float | None:
    """Chunks completed per second over the throughput window (or since the queue started)."""
    now = float(chunks["now"])
    first = _f(chunks["first_started_at"])
    window = min(THROUGHPUT_WINDOW_SECONDS, now - first) if first is not None else None
    recent = int(chunks["recent_completed"] or 0)
    return recent / window if window and window > 0 and recent else None


def summary_of(
    queue: Queue, tally: AttemptTally, chunks: dict[str, Any], p95: float | None
) -> QueueSummary:
    """A queue's summary from its row (with totals), its attempts added up, its chunks' row
    (oldest pending age, stuck, recent completions, first start, recoveries, now) and its p95."""
    by_outcome = tally.by_outcome
    attempts = sum(by_outcome.values())
    completed = by_outcome[Outcome.COMPLETED]
    timed_n = tally.timed_n
    throughput = _throughput(chunks)
    totals = {status.value: n for status, n in queue.totals.items()}
    remaining = totals.get("pending", 0) + totals.get("processing", 0)
    return QueueSummary(
        queue_id=queue.id,
        name=queue.name,
        status=queue.status.value,
        totals=totals,
        progress=(queue.done / queue.total) if queue.total else 1.0,
        attempts=attempts,
        completed_attempts=completed,
        failed_attempts=sum(by_outcome[o] for o in FAILED_OUTCOMES),
        success_rate=(completed / attempts) if attempts else None,
        retries=by_outcome[Outcome.RETRIED],
        deferrals=by_outcome[Outcome.DEFERRED],
        held=by_outcome[Outcome.HELD],
        dead_attempts=by_outcome[Outcome.DEAD],
        stuck_recovered=by_outcome[Outcome.STUCK],
        failures_by_category=dict(tally.by_category.most_common()),
        avg_processing_s=(tally.timed_s / timed_n) if timed_n else None,
        p95_processing_s=p95,
        items_per_s=(tally.completed_items / tally.completed_s) if tally.completed_s > 0 else None,
        avg_efficiency=(tally.eff_sum / tally.eff_n) if tally.eff_n else None,
        total_retry_delay_s=tally.delay_total,
        throughput_chunks_per_s=throughput,
        oldest_pending_age_s=_f(chunks["oldest_pending_age_s"]),
        stuck=int(chunks["stuck"] or 0),
        dead=totals.get("dead", 0),
        recoveries=int(chunks["recoveries"] or 0),
        eta_s=(remaining / throughput)
        if throughput and remaining
        else (0.0 if not remaining else None),
    )


def _window(manager: Manager, window_s: float) -> tuple[int, int, Counter[str]]:
    """Attempts, failures and failures by category over the last window_s seconds."""
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


class NamedQueryReader:
    """Health computed in Python from the backend's named queries, alike on every dialect."""

    def queue_summary(self, manager: Manager, queue_id: str) -> QueueSummary:
        queue = manager.get_queue(queue_id)
        tally = AttemptTally()
        for r in manager.backend.fetch_all("health_queue_attempts", {"queue_id": queue.id}):
            tally.add(r)
        chunks = manager.backend.fetch_one(
            "health_queue_chunks", {"queue_id": queue.id, "window_s": THROUGHPUT_WINDOW_SECONDS}
        )
        assert chunks is not None
        p95 = queue_percentile(manager, queue.id, tally.timed_n, 0.95)
        return summary_of(queue, tally, chunks, p95)

    def queue_summaries(self, manager: Manager, queue_ids: list[str]) -> list[QueueSummary]:
        found = []
        for queue_id in queue_ids:  # SQLite: a read of its own file, no round trip
            try:
                found.append(self.queue_summary(manager, queue_id))
            except NotFound:  # removed since it was listed
                continue
        return found

    def system_summary(
        self, manager: Manager, t: HealthThresholds, dependencies: list[DependencyHealth]
    ) -> SystemSummary:
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
        stressed = [d.dependency for d in dependencies if d.stressed]
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
            dependencies=dependencies,
            stressed_dependencies=stressed,
        )


SQL_INTERFACE: HealthReader = SqlInterfaceReader()
NAMED_QUERIES: HealthReader = NamedQueryReader()
