"""Health answers: per queue and system-wide, with the health state and its reasons; and the
thresholds that decide that state, loaded from configuration.

Each answer comes from the health reader the backend's declared capability picks
(chunksync.observe.readers): PostgreSQL's SQL health interface, or the same figures computed
through named queries. The vocabulary (states, thresholds, summaries, `assess`) lives in
chunksync.observe.model; health over time and per worker or dependency in
chunksync.observe.trends.
"""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

from chunksync.deps.budget import RetryBudgets
from chunksync.exceptions import ConfigurationError, NotFound
from chunksync.manager import Manager
from chunksync.models import Queue
from chunksync.observe.model import (
    DependencyNamer,
    HealthThresholds,
    QueueSummary,
    SystemSummary,
)
from chunksync.observe.readers import reader_for
from chunksync.observe.trends import dependency_health

THRESHOLDS_ENV = "CHUNKSYNC_HEALTH_CONFIG"  # a TOML file with a [health] table
SUMMARY_PAGE = 1000  # queues' summaries a read (queue_summaries)


def queue_summary(manager: Manager, queue: Queue | str) -> QueueSummary:
    """A queue's progress, attempts, failures by category, timings, throughput and ETA, read
    now (a Queue passed in gives its id). `queue` may be a queue's id or name."""
    if isinstance(queue, Queue):
        queue_id = queue.id
    else:
        try:
            queue_id = manager.queue_row(queue).id  # by id: no count of its chunks
        except NotFound:
            queue_id = manager.get_queue(queue).id  # by name
    return reader_for(manager.backend).queue_summary(manager, queue_id)


def queue_summaries(manager: Manager, queues: Sequence[Queue]) -> list[QueueSummary]:
    """The summaries of `queues` that still exist, in order, as `queue_summary` reads each,
    SUMMARY_PAGE queues a read (the dashboard's lists read theirs from the rollups' histograms:
    chunksync.observe.listing)."""
    ids = [q.id for q in queues]
    reader = reader_for(manager.backend)
    found: list[QueueSummary] = []
    for start in range(0, len(ids), SUMMARY_PAGE):
        found.extend(reader.queue_summaries(manager, ids[start : start + SUMMARY_PAGE]))
    return found


def system_summary(
    manager: Manager,
    thresholds: HealthThresholds | None = None,
    *,
    budgets: RetryBudgets | None = None,
    dependency_of: DependencyNamer | None = None,
) -> SystemSummary:
    """The whole system: workers, backlog, error rates, dependencies, and the health state."""
    t = thresholds or HealthThresholds()
    deps = dependency_health(manager, t, dependency_of=dependency_of, budgets=budgets)
    return reader_for(manager.backend).system_summary(manager, t, deps)


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
