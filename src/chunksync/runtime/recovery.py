"""What happens to a stuck chunk: the rule `Manager.recover_stuck` applies, as a pure function.

A chunk is stuck when its lease expired or its worker stopped heartbeating. Recovery puts it back
to pending (the attempt it was on stays counted, its category is timeout) unless it has now been
stuck its policy's `crash_loop_limit` times in a row (a chunk that kills its worker: dead,
"crash_loop") or the policy would not retry a timeout at this attempt (dead, "stuck: out of
attempts"). The manager and the policy benchmark (chunksync.simulate) both call
`stuck_verdict()`.

A worker that is alive but cut off from the database (a network partition, a failover) looks
dead from the database's side: its heartbeat stops and recovery takes its chunks, charging each
an attempt and a crash. Only the worker can tell, when it is back: its own record says that its
heartbeats failed, or waited on the database, for longer than its lease, while the process ran
on. `StallClock` keeps that record; the worker then asks `Manager.absolve_stall` to give back
what recovery charged, so an outage spends no attempt and marks no crash loop. A worker that
really died never comes back to do so, and one whose heartbeat thread simply did not run (a
handler holding the interpreter) had no failed or slow heartbeat: both stay charged.
"""

from __future__ import annotations

from dataclasses import dataclass

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


@dataclass(slots=True)
class StallClock:
    """One worker's record of its heartbeats (monotonic seconds): when the database answers
    again, whether the worker was stalled rather than dead, and for how long."""

    lease_s: float
    last_ok: float
    troubled: bool = False  # a heartbeat failed since the last one that was answered

    def failed(self) -> None:
        self.troubled = True

    def answered(self, started: float, now: float) -> float | None:
        """A heartbeat begun at `started` was answered at `now`: the length of the outage the
        worker lived through (failed heartbeats, or one that waited on the database, for longer
        than the lease), or None when its leases never lapsed for the database's sake."""
        waited = now - started > self.lease_s / 2
        gap = now - self.last_ok
        stalled = (self.troubled or waited) and gap > self.lease_s
        self.last_ok, self.troubled = now, False
        return gap if stalled else None
