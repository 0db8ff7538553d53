"""What happens to a stuck chunk: the rule `Manager.recover_stuck` applies, as a pure function.

A chunk is stuck when its lease expired or its worker stopped heartbeating. Recovery puts it back
to pending (the attempt it was on stays counted, its category is timeout) unless it has now been
stuck its policy's `crash_loop_limit` times in a row (a chunk that kills its worker: dead,
"crash_loop") or the policy would not retry a timeout at this attempt (dead, "stuck: out of
attempts"). The manager and the policy benchmark (chunksync.simulate) both call
`stuck_verdict()`.
"""

from __future__ import annotations

from chunksync.models import ChunkStatus, ErrorCategory
from chunksync.retry import Action, RetryPolicy


def stuck_verdict(
    policy: RetryPolicy,
    *,
    attempts: int,
    max_attempts: int,
    crash_count: int,
    crash_loop_limit: int | None = None,
) -> tuple[ChunkStatus, str]:
    """The status a stuck chunk moves to and why: ("pending", "stuck") or dead with a reason.

    `crash_count` is the chunk's count before this recovery (recovery adds one);
    `crash_loop_limit` defaults to the policy's.
    """
    limit = policy.crash_loop_limit if crash_loop_limit is None else crash_loop_limit
    crashes = crash_count + 1
    decision = policy.decide(ErrorCategory.TIMEOUT, attempts, max_attempts=max_attempts)
    if crashes >= limit:
        return ChunkStatus.DEAD, "crash_loop"
    if decision.action is Action.DEAD:
        return ChunkStatus.DEAD, "stuck: out of attempts"
    return ChunkStatus.PENDING, "stuck"
