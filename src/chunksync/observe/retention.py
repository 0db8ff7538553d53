"""Retention: old attempt metrics, audit entries, finished chunks and resolved alerts go away.

Rows older than N days (RETENTION_DAYS) are deleted in batches of at most RETENTION_BATCH_ROWS,
each batch its own short transaction (`DELETE ... WHERE id IN (SELECT ... LIMIT n)`), so a
claiming worker never waits behind retention for longer than one small batch. Runs on the
maintenance leader (chunksync.runtime.upkeep) and on demand: `chunksync cleanup --older-than 30d`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

from chunksync.durations import parse_duration
from chunksync.exceptions import ConfigurationError
from chunksync.manager import Manager
from chunksync.observe import rollups

RETENTION_DAYS = 30
RETENTION_BATCH_ROWS = 500
RETENTION_MAX_BATCHES = 200  # per table per run: the leader comes back for the rest
DAY_SECONDS = 86400.0

# (what, named query): chunks last, so their attempts and audit entries go first.
TABLES = (
    ("attempts", "retention_attempts"),
    ("audit", "retention_audit"),
    ("alerts", "retention_alerts"),
    ("chunks", "retention_chunks"),
)


@dataclass(frozen=True, slots=True)
class RetentionResult:
    attempts: int = 0
    audit: int = 0
    alerts: int = 0
    chunks: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)

    @property
    def total(self) -> int:
        return self.attempts + self.audit + self.alerts + self.chunks


def parse_age(text: str) -> float:
    """'30d', '12h', '90m', '45s', '2w' or a bare number of days -> seconds (the one syntax of
    chunksync.durations)."""
    return parse_duration(text, bare="d", what="age")


def cleanup(
    manager: Manager,
    older_than_s: float = RETENTION_DAYS * DAY_SECONDS,
    *,
    batch: int = RETENTION_BATCH_ROWS,
    max_batches: int | None = RETENTION_MAX_BATCHES,
    between_batches: Callable[[], object] | None = None,
) -> RetentionResult:
    """Delete rows older than `older_than_s`, batch by batch; returns how many went."""
    if older_than_s < 0 or batch < 1:
        raise ConfigurationError("the age must not be negative and the batch at least 1")
    rollups.fold(manager, lag_s=0)  # every attempt's figures kept before any raw row goes
    removed: dict[str, int] = {}
    params = {"older_than_s": older_than_s, "limit": batch}
    for what, query in TABLES:
        total = batches = 0
        while max_batches is None or batches < max_batches:
            n = manager.backend.execute(query, params)  # one short transaction per batch
            total += max(n, 0)
            batches += 1
            if n < batch:
                break
            if between_batches is not None:
                between_batches()
        removed[what] = total
    return RetentionResult(**removed)
