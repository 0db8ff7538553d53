"""What one attempt came to, worked out from plain data: the rules of steps 4 to 6, written once.

The worker (chunksync.runtime.worker) measures the time, reads the memory sampler and applies
what this module returns; the policy benchmark (chunksync.simulate) applies the same results to
its simulated chunks, so a failed attempt's transition rules exist only here:

- `analyze`: a failure's category, rule, Retry-After and its stored (redacted) message;
- `counted`, `measured`: the items an attempt processed and its metrics row;
- `completed`, `decide`, `held`, `setup_failure`: the `FinishResult` that takes the chunk out
  of `processing` (retry with the policy's delay, defer, dead-letter, hold), and its row.

Nothing here does I/O, reads a clock or starts a thread. The one thing changed is the
dependency's `RetryBudget` handed in: each attempt's success or failure is charged to it (as
`retry.decide_failure` does), because the next decision depends on it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Protocol

from chunksync.deps.budget import RetryBudget
from chunksync.errors import categorize
from chunksync.exceptions import Abort
from chunksync.models import Attempt, Chunk, ChunkStatus, ErrorCategory, Outcome
from chunksync.redact import redact
from chunksync.results import FinishResult
from chunksync.retry import Action, RandomSource, RetryPolicy, decide_failure

MESSAGE_MAX_CHARS = 2000
HELD_MESSAGE = "not attempted: its dependency is stressed"
COMPLETED_SHARED = 1024  # item counts whose completed result is kept (chunk sizes: a few)
_COMPLETED: dict[int, FinishResult] = {}  # a success's result, by its count of items


class Counts(Protocol):
    """The columns of a chunk that a decision reads (a `Chunk`, or the simulation's own)."""

    @property
    def attempts(self) -> int: ...
    @property
    def max_attempts(self) -> int: ...
    @property
    def stress_retries(self) -> int: ...
    @property
    def deferrals(self) -> int: ...


@dataclass(frozen=True, slots=True)
class Failure:
    """A failed attempt as step 4 analyzed it. `aborted` is an `Abort`'s redacted reason: the
    handler said the chunk can never succeed, so it goes dead whatever the policy says."""

    category: ErrorCategory
    rule: str
    retry_after_s: float | None
    message: str
    aborted: str | None = None


def error_message(error: BaseException) -> str:
    """The redacted, bounded text stored for a failure."""
    text = f"{type(error).__name__}: {error}"
    return storable(redact(text))[:MESSAGE_MAX_CHARS]  # escapes lengthen it: cut after them


def storable(text: str) -> str:
    """`text` as both dialects store it: a NUL (PostgreSQL refuses it) and a lone surrogate
    (an OSError's undecodable file name; no UTF-8 holds it) written as their escapes. Either
    left in a failure's message made the attempt's result unwritable, so lease recovery took
    the chunk over, attempt after attempt."""
    if "\x00" in text:
        text = text.replace("\x00", "\\x00")
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def analyze(error: BaseException) -> Failure:
    """Step 4: categorize a failure and word it as it will be stored."""
    found = categorize(error)
    aborted = storable(redact(f"aborted: {error.reason}")) if isinstance(error, Abort) else None
    return Failure(found.category, found.rule, found.retry_after_s, error_message(error), aborted)


def counted(returned: object, reported: int) -> int:
    """The items a handler processed: what it returned when that is a count, else what it
    reported through its context; -1 when neither (`measured` lets the chunk size stand in)."""
    if isinstance(returned, int) and not isinstance(returned, bool) and returned >= 0:
        return returned
    return -1 if reported == 0 else reported


def measured(
    chunk: Chunk,
    worker_id: str,
    *,
    size: int,
    items: int,
    elapsed_s: float,
    median_items_per_s: float | None,
    rss_bytes: int | None,
) -> Attempt:
    """Step 5: the metrics row of an attempt that took `elapsed_s`, as a success (a failure's
    `failed_row` is made from it). Its efficiency is its rate over the queue's recent median."""
    elapsed = max(elapsed_s, 1e-9)
    items = size if items < 0 else items
    ips = items / elapsed
    # By position, in Attempt's field order: one per chunk, and its 13 keywords cost ~0.4 us.
    return Attempt(
        chunk.id,  # chunk_id
        chunk.queue_id,  # queue_id
        chunk.tenant,  # tenant
        worker_id,  # worker_id
        chunk.attempts,  # attempt
        0.0,  # started_at
        elapsed,  # finished_at
        Outcome.COMPLETED,  # outcome
        None,  # category
        None,  # rule
        None,  # message
        None,  # retry_delay_s
        size,  # chunk_size
        items,  # items_processed
        ips,  # items_per_s
        ips / median_items_per_s if median_items_per_s else None,  # efficiency
        rss_bytes,  # rss_bytes
    )


def completed(budget: RetryBudget, items: int, *, probe: bool = False) -> FinishResult:
    """Step 6 for a success: the dependency's budget is refilled (a probe's success reopens
    its gate), the chunk completed. The result is shared by the successes of a given count
    of items (a FinishResult is never changed once made): making one was ~0.4 us of a
    no-op chunk's ~24."""
    budget.on_success(probe=probe)
    found = _COMPLETED.get(items)
    if found is None:
        found = FinishResult(ChunkStatus.COMPLETED, Outcome.COMPLETED, items=items)
        if len(_COMPLETED) < COMPLETED_SHARED:
            _COMPLETED[items] = found
    return found


def decide(
    chunk: Counts,
    failure: Failure,
    policy: RetryPolicy,
    budget: RetryBudget,
    *,
    items: int = 0,
    probe: bool = False,
    time_scale: float = 1.0,
    rng: RandomSource | None = None,
) -> tuple[FinishResult, float]:
    """Step 6 for a failure: retry after the policy's delay, defer (the attempt given back), or
    dead-letter. Returns the result (its delay multiplied by `time_scale`) and the policy's
    delay before `time_scale`, which the attempt row records (0 when the chunk is dead)."""
    common: dict[str, Any] = {
        "category": failure.category,
        "message": failure.message,
        "items": items,
    }
    if failure.aborted is not None:  # the budget is not charged: the dependency did not fail
        return FinishResult(
            ChunkStatus.DEAD, Outcome.DEAD, dead_reason=failure.aborted, **common
        ), 0.0
    decision = decide_failure(
        policy,
        budget,
        failure.category,
        attempts=chunk.attempts,
        max_attempts=chunk.max_attempts,
        retry_after_s=failure.retry_after_s,
        stress_retries=chunk.stress_retries,
        deferrals=chunk.deferrals,
        rng=rng,
        probe=probe,
    )
    if decision.action is Action.DEAD:
        return FinishResult(
            ChunkStatus.DEAD, Outcome.DEAD, dead_reason=decision.reason, **common
        ), 0.0
    delay = decision.delay_s * time_scale
    if decision.action is Action.DEFER:
        return FinishResult(
            ChunkStatus.PENDING,
            Outcome.DEFERRED,
            delay_s=delay,
            attempts_delta=-1,
            deferrals_delta=1,
            **common,
        ), decision.delay_s
    return FinishResult(
        ChunkStatus.PENDING,
        Outcome.RETRIED,
        delay_s=delay,
        stress_delta=1 if decision.stress_retry else 0,
        **common,
    ), decision.delay_s


def failed_row(
    measured_row: Attempt, result: FinishResult, failure: Failure, policy_delay_s: float
) -> Attempt:
    """The metrics row of a failed attempt: its measurements, what was decided and why."""
    return replace(
        measured_row,
        outcome=result.outcome,
        category=failure.category,
        rule=failure.rule,
        message=result.message,
        retry_delay_s=policy_delay_s if result.status is ChunkStatus.PENDING else None,
    )


def held(
    chunk: Chunk, worker_id: str, hold_s: float, *, time_scale: float = 1.0
) -> tuple[FinishResult, Attempt]:
    """A chunk the gate held (its dependency is stressed): back to pending after `hold_s`
    policy seconds, its attempt given back, no handler call, not a failure; recorded as a
    `held` row (processing time 0) so that health shows it."""
    result = held_result(hold_s, items=chunk.items_processed, time_scale=time_scale)
    return result, Attempt(
        chunk_id=chunk.id,
        queue_id=chunk.queue_id,
        tenant=chunk.tenant,
        worker_id=worker_id,
        attempt=chunk.attempts,
        started_at=0.0,
        finished_at=0.0,
        outcome=Outcome.HELD,
        message=HELD_MESSAGE,
        retry_delay_s=hold_s,
    )


def held_result(hold_s: float, *, items: int = 0, time_scale: float = 1.0) -> FinishResult:
    """`held`'s result alone, for a caller that keeps no attempt rows (the simulation)."""
    return FinishResult(
        ChunkStatus.PENDING,
        Outcome.HELD,
        delay_s=hold_s * time_scale,
        attempts_delta=-1,
        items=items,
    )


def setup_failure(chunk: Chunk, worker_id: str, message: str) -> tuple[FinishResult, Attempt]:
    """No handler can run this chunk here (unknown kind, bad payload): it goes dead, clearly,
    with the (redacted) `message` as its reason."""
    message = storable(message)
    result = FinishResult(
        ChunkStatus.DEAD,
        Outcome.DEAD,
        category=ErrorCategory.PROCESSING_ERROR,
        message=message,
        dead_reason=message,
    )
    return result, Attempt(
        chunk_id=chunk.id,
        queue_id=chunk.queue_id,
        tenant=chunk.tenant,
        worker_id=worker_id,
        attempt=chunk.attempts,
        started_at=0.0,
        finished_at=0.0,
        outcome=Outcome.DEAD,
        category=ErrorCategory.PROCESSING_ERROR,
        rule="setup",
        message=message,
    )
