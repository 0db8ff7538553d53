"""Health over time and per part: hourly figures, failures per bucket, each worker's trend, and
each dependency's recent error rate.

Computed from the attempt health metrics and the workers' heartbeats through the backend's
named queries, alike on every dialect. `dependency_health` is the signal shared by the health
state (chunksync.observe.health) and the retry policy's stress awareness (the upkeep loop feeds
it to the retry budgets).
"""

from __future__ import annotations

from typing import Any

from chunksync.deps.budget import RetryBudgets
from chunksync.manager import Manager
from chunksync.models import Outcome
from chunksync.observe.model import (
    FAILED_OUTCOMES,
    SHORT_WINDOW_SECONDS,
    WORKER_TIMEOUT_SECONDS,
    DependencyHealth,
    DependencyNamer,
    HealthThresholds,
    WorkerTrend,
)
from chunksync.sources.base import default_dependency

TREND_WINDOW_SECONDS = 3600.0
TREND_BUCKET_SECONDS = 300.0
HOURLY_WINDOW_SECONDS = 24 * 3600.0


def hourly(manager: Manager, window_s: float = HOURLY_WINDOW_SECONDS) -> list[dict[str, Any]]:
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
