"""The PostgreSQL path of chunksync.observe.health: the answers come from the SQL health interface
(get_queue_health_summary, get_system_health_metrics, chunked_sync_health_summary), so that
Python, psql and RPC callers share one implementation. SQLite's path is in health.py; the
contract tests hold both to the same figures."""

from __future__ import annotations

import dataclasses
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from chunksync.manager import Manager
    from chunksync.observe.health import (
        DependencyHealth,
        HealthThresholds,
        QueueSummary,
        SystemSummary,
    )


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


def queue_summary(manager: Manager, queue_id: str, window_s: float) -> QueueSummary:
    from chunksync.observe.health import QueueSummary

    row = manager.backend.fetch_one(
        "pg_queue_health_summary", {"queue_id": queue_id, "window_s": window_s}
    )
    assert row is not None
    return _fill(  # type: ignore[no-any-return]
        QueueSummary,
        row,
        queue_id=str(row["queue_id"]),
        totals=_json(row["totals"]),
        failures_by_category=_json(row["failures_by_category"]),
        total_retry_delay_s=float(row["total_retry_delay_s"] or 0.0),
    )


def system_row(manager: Manager, t: HealthThresholds, stressed: list[str]) -> dict[str, Any]:
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
    return row


def system_summary(
    manager: Manager, t: HealthThresholds, dependencies: list[DependencyHealth]
) -> SystemSummary:
    from chunksync.observe.health import HealthState, SystemSummary

    stressed = [d.dependency for d in dependencies if d.stressed]
    row = system_row(manager, t, stressed)
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


def hourly(manager: Manager, window_s: float) -> list[dict[str, Any]]:
    rows = manager.backend.fetch_all("pg_hourly_summary", {"window_s": window_s})
    return [
        {
            "hour": int(r["hour"]),
            "attempts": int(r["attempts"]),
            "successes": int(r["successes"]),
            "failures": _json(r["failures_by_category"]),
            "avg_processing_s": r["avg_processing_s"],
            "p95_processing_s": r["p95_processing_s"],
            "items_per_s": r["items_per_s"],
        }
        for r in rows
    ]
