"""What an attempt comes to, as a finish writes it: the chunk's result (`FinishResult`), the
report that carries it with the attempt's metrics row (`Report`), and the two rows of a
finish's batches, by position (`finish_row`, `attempt_row`). The rules that decide a result
are runtime.attempt's; the statements that write it are the manager's."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from chunksync.backends.base import finite
from chunksync.models import Attempt, Chunk, ChunkStatus, ErrorCategory, Outcome


# FinishResult and Report are built for every chunk and never changed after: plain slots
# classes, because a frozen dataclass's __init__ costs ~2 us more (object.__setattr__ per field).
# A success's FinishResult is even shared (runtime.attempt.completed): never change one.
@dataclass(slots=True)
class FinishResult:
    """How a claimed chunk leaves `processing` after an attempt."""

    status: ChunkStatus
    outcome: Outcome
    delay_s: float = 0.0
    attempts_delta: int = 0  # -1 gives the attempt back (a deferral)
    deferrals_delta: int = 0
    stress_delta: int = 0
    category: ErrorCategory | None = None
    message: str | None = None
    dead_reason: str | None = None
    items: int = 0


@dataclass(slots=True)
class Report:
    """One attempt's result, ready to be written (step 7 of the loop)."""

    chunk: Chunk
    token: str
    result: FinishResult
    attempt: Attempt


def with_outcome(attempt: Attempt, outcome: Outcome, delay: float | None) -> Attempt:
    """`attempt` as it came to `outcome` after all (a finish that lost its lease)."""
    return replace(attempt, outcome=outcome, retry_delay_s=delay)


def finish_row(report: Report, fair_key: float | None) -> list[Any]:
    """One row of finish_chunks' batch, by position (id, token, status, delay_s, attempts_delta,
    deferrals_delta, stress_delta, category, message, dead_reason, items, fair_key): without
    the keys the JSON is half as long to write here and to parse in the database."""
    r = report.result
    return [report.chunk.id, report.token, r.status, finite(r.delay_s), r.attempts_delta,
            r.deferrals_delta, r.stress_delta, r.category, r.message, r.dead_reason, r.items,
            finite(fair_key)]  # fmt: skip


def attempt_row(a: Attempt) -> list[Any]:
    """One attempt in the compact form of log_chunk_health_metrics(jsonb): the one-attempt
    form's 16 values, in its order."""
    ips, efficiency = a.items_per_s, a.efficiency
    return [
        a.chunk_id,
        a.queue_id,
        a.tenant,
        a.worker_id,
        a.attempt,
        finite(a.processing_s),
        a.outcome,
        a.chunk_size,
        a.items_processed,
        ips if ips is not None and math.isfinite(ips) else None,
        efficiency if efficiency is not None and math.isfinite(efficiency) else None,
        a.category,
        a.rule,
        a.message,
        finite(a.retry_delay_s),
        a.rss_bytes,
    ]
