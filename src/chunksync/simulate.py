"""The policy benchmark's discrete-event simulation: one recorded fault stream, several policies.

The stream (chunksync.faults) is generated from a seed and serialisable, the same for every
policy.

`simulate()` replays a stream against one policy on a simulated clock. It models the worker's
loop, not its threads: each dependency has `slots` workers that claim the due chunk with the
first place in the fair order (the claim query's order: a chunk's seq, and a chunk back to
pending after an attempt goes to the end of the line, its tenant's next place), a call takes the
time the stream says, and what an attempt comes to is decided by the worker's own code,
chunksync.runtime.attempt: the real exception of each kind of outcome from `make_exception()`,
analyzed (`attempt.analyze`), decided on a real `RetryBudget` (`attempt.decide`,
`attempt.completed`), and the `FinishResult` applied to the simulated chunk as finish_chunk
applies it; for a worker death the lease, then `recovery.stuck_verdict()`. Before each call, the
worker's step 3 pre-condition runs too: `deps.budget.admit_or_hold()` on that budget (the gate's
pure rules of `deps.gate`, as the fleet's shared row applies them), and a chunk it refuses is
held as the worker holds it (`attempt.held_result`: back to pending after the hold delay,
attempt given back, no call). The budget's limits are the policy's `[stress]` table, as in the
worker.
Nothing the worker decides is copied here.

What is simplified: a worker death kills one slot (as a worker with concurrency 1), restarted
after RESTART_SECONDS; recovery runs one poll interval after the lease expired; an idle slot
claims as soon as a chunk is due, one chunk per claim (as the worker does for chunks slower than
10 ms); each queue has max_attempts = its policy's max_attempts; a hold takes no simulated time
(in the worker it is one claim and one write, a few milliseconds).
The metrics are defined in `chunksync.simreport`.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

from chunksync.deps.budget import RetryBudget, RetryBudgets, admit_or_hold
from chunksync.faults import (
    DEFAULT_CHUNKS_PER_DEPENDENCY,
    DEFAULT_SEED,
    DEFAULT_SLOTS,
    DIE,
    OK,
    ChunkScript,
    DependencyStream,
    FaultStream,
    call_seconds,
    make_exception,
)
from chunksync.models import ChunkStatus, ErrorCategory, Outcome
from chunksync.results import FinishResult
from chunksync.retry import (
    DEFAULT_POLICY,
    CategoryRule,
    Gate,
    RandomSource,
    RetryPolicy,
    Schedule,
    ScheduleKind,
)
from chunksync.runtime import attempt
from chunksync.runtime.recovery import stuck_verdict
from chunksync.runtime.worker import LEASE_SECONDS, POLL_SECONDS

RESTART_SECONDS = 5.0  # a dead worker's slot comes back (a supervisor restarts it)
MAX_SIM_SECONDS = 7 * 24 * 3600.0
MALFORMED_SHARE = 0.01  # the malformed-records scenario: chunks that fail on every attempt
MALFORMED = "processing_error"


# --- the policies ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PolicySpec:
    """A policy as the benchmark runs it. Without stress awareness the dependency's budget never
    reports stress (its threshold is 0), which is what a policy without budgets amounts to: no
    stretched retries, no deferrals, and the gate never closes on a call."""

    label: str
    policy: RetryPolicy
    stress_aware: bool = True

    @property
    def run_policy(self) -> RetryPolicy:
        """The policy as run (and as a worker would be given it to run the same way)."""
        if self.stress_aware:
            return self.policy
        return replace(self.policy, stress=replace(self.policy.stress, threshold=0.0))


NAIVE = "naive"
EXPONENTIAL = "exponential"
DEFAULT_NO_STRESS = "default, no stress"
DEFAULT_STRESS = "default"
HELD = "held"  # the action of a hold: the gate kept the chunk from its stressed dependency
ACTIONS = {  # an attempt's outcome, as the action its record names
    Outcome.COMPLETED: "completed",
    Outcome.RETRIED: "retry",
    Outcome.DEFERRED: "defer",
    Outcome.DEAD: "dead",
    Outcome.HELD: HELD,
}


def naive_policy() -> RetryPolicy:
    """Retry every failure up to 5 times (6 attempts) after a fixed 1 s."""
    rule = CategoryRule(True, Schedule(ScheduleKind.STEPS, 1.0, steps=(1.0,)))
    return RetryPolicy(NAIVE, {c: rule for c in ErrorCategory}, jitter=0.0, max_attempts=6)


def exponential_policy() -> RetryPolicy:
    """What tenacity users write, `wait_random_exponential(multiplier=1, max=60)` with
    `stop_after_attempt(5)`: every failure retried, full jitter over 1, 2, 4... s capped at 60 s."""
    rule = CategoryRule(True, Schedule(ScheduleKind.EXPONENTIAL, 1.0, 2.0, max_s=60.0))
    return RetryPolicy(
        EXPONENTIAL,
        {c: rule for c in ErrorCategory},
        jitter=0.0,
        max_attempts=5,
        full_jitter=True,
    )


def builtin_policies() -> list[PolicySpec]:
    return [
        PolicySpec(NAIVE, naive_policy(), stress_aware=False),
        PolicySpec(EXPONENTIAL, exponential_policy(), stress_aware=False),
        PolicySpec(DEFAULT_NO_STRESS, DEFAULT_POLICY, stress_aware=False),
        PolicySpec(DEFAULT_STRESS, DEFAULT_POLICY, stress_aware=True),
    ]


# --- the simulation ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """One call into a dependency and what came of it. `action` is completed, retry, defer, dead
    or died (the worker died), or held: no call, the gate held the chunk (see `calls`);
    `delay_s` is the policy's delay (before any time_scale)."""

    dependency: str
    seq: int
    attempt: int
    started_s: float
    finished_s: float
    outcome: str
    category: ErrorCategory | None
    action: str
    delay_s: float
    into_outage: bool
    wasted_on_permanent: bool


@dataclass(frozen=True, slots=True)
class RecoveryRecord:
    dependency: str
    seq: int
    at_s: float
    to_status: ChunkStatus
    reason: str


@dataclass(frozen=True, slots=True)
class ChunkFinal:
    dependency: str
    seq: int
    status: ChunkStatus
    dead_reason: str | None
    doomed: bool
    stuck: int  # times its worker died under it
    ended_s: float | None = None  # when it became completed or dead (None: it did not)


@dataclass(frozen=True, slots=True)
class SimResult:
    label: str
    stream: FaultStream
    attempts: tuple[AttemptRecord, ...]
    recoveries: tuple[RecoveryRecord, ...]
    chunks: tuple[ChunkFinal, ...]
    finished_s: float

    def calls(self) -> list[AttemptRecord]:
        """The records of real calls into a dependency (holds left out)."""
        return [a for a in self.attempts if a.action != HELD]

    def decisions(self) -> list[tuple[int, int, str, str, float]]:
        """(seq, attempt, category, action, delay) of each finished attempt or hold, in order."""
        return [
            (a.seq, a.attempt, a.category.value if a.category else "", a.action, a.delay_s)
            for a in self.attempts
            if a.action != "died"
        ]


@dataclass(slots=True)
class _Chunk:
    """The columns of a chunk row that the decisions read and write."""

    dep: int
    script: ChunkScript
    max_attempts: int
    status: ChunkStatus = ChunkStatus.PENDING
    attempts: int = 0
    run_after: float = 0.0
    stress_retries: int = 0
    deferrals: int = 0
    crash_count: int = 0
    calls_reached: int = 0  # calls that reached the healthy dependency (the script's index)
    permanent_seen: bool = False
    probe: bool = False  # its current call is the gate's probe
    place: int = 0  # its place in the fair order (fair_key): its seq, then the line's end
    dead_reason: str | None = None
    stuck: int = 0
    ended_s: float | None = None


@dataclass(slots=True)
class _Dep:
    stream: DependencyStream
    budget: RetryBudget
    waiting: list[tuple[float, int]] = field(default_factory=list)  # (run_after, seq)
    due: list[tuple[int, int]] = field(default_factory=list)  # (place, seq): the claim order
    last_place: int = 0
    idle: int = 0
    wake_at: float | None = None


class _Simulation:
    def __init__(
        self,
        stream: FaultStream,
        spec: PolicySpec,
        rng: RandomSource | None,
        time_scale: float,
    ) -> None:
        self.stream = stream
        self.spec = spec
        self.rng = rng
        self.time_scale = time_scale
        self.policy = spec.run_policy
        budgets = RetryBudgets(clock=lambda: self.now, time_scale=self.time_scale)
        self.deps = [_Dep(d, budgets.get(d.name, self.policy.stress)) for d in stream.dependencies]
        self.chunks: list[dict[int, _Chunk]] = []
        for i, d in enumerate(stream.dependencies):
            table = {c.seq: _Chunk(i, c, self.policy.max_attempts, place=c.seq) for c in d.chunks}
            self.chunks.append(table)
            self.deps[i].due = sorted((seq, seq) for seq in table)
            self.deps[i].last_place = max(table, default=0)
        self.events: list[tuple[float, int, str, int, int]] = []  # (t, n, kind, dep, seq)
        self.counter = 0
        self.now = 0.0
        self.attempts: list[AttemptRecord] = []
        self.recoveries: list[RecoveryRecord] = []
        self.started: dict[tuple[int, int], tuple[float, str, bool, bool]] = {}
        self.failures: dict[str, attempt.Failure] = {}  # kind of outcome -> its analysis

    def _at(self, t: float, kind: str, dep: int, seq: int = 0) -> None:
        self.counter += 1
        heapq.heappush(self.events, (t, self.counter, kind, dep, seq))

    def run(self) -> SimResult:
        for i, d in enumerate(self.deps):
            for _ in range(d.stream.slots):
                self._at(0.0, "slot", i)
        while self.events:
            t, _, kind, dep, seq = heapq.heappop(self.events)
            if t > MAX_SIM_SECONDS:
                break
            self.now = t
            if kind == "slot":
                self._claim(dep)
            elif kind == "wake":
                self._wake(dep)
            elif kind == "finish":
                self._finish(dep, seq)
            elif kind == "die":
                self._die(dep, seq)
            elif kind == "recover":
                self._recover(dep, seq)
        finals = tuple(
            ChunkFinal(
                self.stream.dependencies[c.dep].name,
                c.script.seq,
                c.status,
                c.dead_reason,
                c.script.doomed,
                c.stuck,
                c.ended_s,
            )
            for table in self.chunks
            for c in table.values()
        )
        return SimResult(
            self.spec.label,
            self.stream,
            tuple(self.attempts),
            tuple(self.recoveries),
            finals,
            self.now,
        )

    # --- claiming: the first place among the due chunks, as the claim query orders them

    def _claim(self, i: int) -> None:
        """The slot claims until a chunk's call starts (a held chunk frees it at once)."""
        d = self.deps[i]
        while True:
            while d.waiting and d.waiting[0][0] <= self.now:
                seq = heapq.heappop(d.waiting)[1]
                heapq.heappush(d.due, (self.chunks[i][seq].place, seq))
            if not d.due:
                d.idle += 1
                if d.waiting:
                    self._wake_at(i, d.waiting[0][0])
                return
            if d.budget.shut(self.now):  # the claim skips a shut gate's chunks, as the worker's
                d.idle += 1
                probe_at = d.budget.next_probe_at()
                if probe_at is not None:
                    self._wake_at(i, probe_at)
                return
            if self._start(i, self.chunks[i][heapq.heappop(d.due)[1]]):
                return

    def _wake_at(self, i: int, t: float) -> None:
        d = self.deps[i]
        if d.wake_at is None or t < d.wake_at:
            d.wake_at = t
            self._at(t, "wake", i)

    def _wake(self, i: int) -> None:
        d = self.deps[i]
        if d.wake_at is not None and d.wake_at > self.now:
            return  # superseded by an earlier wake that already ran
        d.wake_at = None
        idle, d.idle = d.idle, 0
        for _ in range(idle):
            self._claim(i)

    def _pending(self, c: _Chunk, delay_s: float) -> None:
        c.status = ChunkStatus.PENDING
        c.run_after = self.now + delay_s
        d = self.deps[c.dep]
        heapq.heappush(d.waiting, (c.run_after, c.script.seq))
        if d.idle:
            self._wake_at(c.dep, c.run_after)

    # --- one call

    def _start(self, i: int, c: _Chunk) -> bool:
        """Step 3 for one chunk: False when the gate held it, else its call has started."""
        c.status = ChunkStatus.PROCESSING
        c.attempts += 1
        dep = self.stream.dependencies[i]
        outage = dep.outage is not None and dep.outage.covers(self.now)
        gate, hold_s = admit_or_hold(self.deps[i].budget, self.now, rng=self.rng)
        if gate is Gate.HOLD:
            self._hold(i, c, hold_s, outage)
            return False
        c.probe = gate is Gate.PROBE
        wasted = c.permanent_seen
        if outage and dep.outage is not None:
            kind = dep.outage.failure
        elif dep.rate_limit is not None and dep.rate_limit.covers(self.now):
            kind = f"rate_limit:{max(1, math.ceil(dep.rate_limit.end_s - self.now))}"
        else:
            c.calls_reached += 1
            kind = c.script.outcome(c.calls_reached)
            if kind != OK and c.script.doomed and c.calls_reached >= len(c.script.calls):
                c.permanent_seen = True
        self.started[(i, c.script.seq)] = (self.now, kind, outage, wasted)
        took = call_seconds(kind, c.script.ok_s)
        self._at(self.now + took, "die" if kind == DIE else "finish", i, c.script.seq)
        return True

    def _record(
        self, i: int, c: _Chunk, category: ErrorCategory | None, action: str, delay: float
    ) -> None:
        started, kind, outage, wasted = self.started.pop((i, c.script.seq))
        self.attempts.append(
            AttemptRecord(
                self.stream.dependencies[i].name,
                c.script.seq,
                c.attempts,
                started,
                self.now,
                kind,
                category,
                action,
                delay,
                outage,
                wasted,
            )
        )

    def _hold(self, i: int, c: _Chunk, hold_s: float, outage: bool) -> None:
        """The worker's hold (`attempt.held`): back to pending, attempt given back, no call
        (the slot claims again at once)."""
        self.started[(i, c.script.seq)] = (self.now, HELD, outage, False)
        self._record(i, c, None, HELD, hold_s)
        self._apply(c, attempt.held_result(hold_s, time_scale=self.time_scale))

    def _finish(self, i: int, seq: int) -> None:
        """The call ended: decided by the worker's own rules (chunksync.runtime.attempt)."""
        c = self.chunks[i][seq]
        kind = self.started[(i, seq)][1]
        budget = self.deps[i].budget
        if kind == OK:
            self._record(i, c, None, "completed", 0.0)
            self._apply(c, attempt.completed(budget, 0))
        else:
            failure = self._analyze(kind)
            result, delay_s = attempt.decide(
                c,
                failure,
                self.policy,
                budget,
                probe=c.probe,
                time_scale=self.time_scale,
                rng=self.rng,
            )
            self._record(i, c, failure.category, ACTIONS[result.outcome], delay_s)
            self._apply(c, result)
        self._claim(i)

    def _analyze(self, kind: str) -> attempt.Failure:
        """Step 4 on the real exception of a kind of outcome, once per kind: the same kind always
        raises the same exception, and wording its message costs more than the decision."""
        found = self.failures.get(kind)
        if found is None:
            found = self.failures[kind] = attempt.analyze(make_exception(kind))
        return found

    def _apply(self, c: _Chunk, result: FinishResult) -> None:
        """What finish_chunk does to the chunk's row. It resets the crash count too: only
        crashes in a row make a crash loop."""
        c.attempts += result.attempts_delta  # a deferral or a hold gives the attempt back
        c.deferrals += result.deferrals_delta
        c.stress_retries += result.stress_delta
        c.crash_count = 0
        if result.status is ChunkStatus.PENDING:  # to the end of the line (tenants.places)
            d = self.deps[c.dep]
            d.last_place += 1
            c.place = d.last_place
            self._pending(c, result.delay_s)
        else:
            c.status = result.status
            c.dead_reason = result.dead_reason
            c.ended_s = self.now

    # --- worker deaths and the stuck-chunk rules

    def _die(self, i: int, seq: int) -> None:
        c = self.chunks[i][seq]
        c.stuck += 1
        self._record(i, c, None, "died", 0.0)
        # The chunk stays processing: its lease (extended by heartbeats until the death) expires,
        # and the next precheck of a live worker finds it.
        self._at(self.now + LEASE_SECONDS + POLL_SECONDS, "recover", i, seq)
        self._at(self.now + RESTART_SECONDS, "slot", i)

    def _recover(self, i: int, seq: int) -> None:
        c = self.chunks[i][seq]
        status, reason = stuck_verdict(
            self.policy,
            attempts=c.attempts,
            max_attempts=c.max_attempts,
            crash_count=c.crash_count,
        )
        c.crash_count += 1
        self.recoveries.append(
            RecoveryRecord(self.stream.dependencies[i].name, seq, self.now, status, reason)
        )
        if status is ChunkStatus.DEAD:
            c.status = ChunkStatus.DEAD
            c.dead_reason = reason
            c.ended_s = self.now
        else:
            self._pending(c, 0.0)


def simulate(
    stream: FaultStream,
    spec: PolicySpec,
    *,
    rng: RandomSource | None = None,
    time_scale: float = 1.0,
) -> SimResult:
    """Replay `stream` against one policy. `rng` draws the jitter (None: exact delays);
    `time_scale` multiplies every wait, as the worker's does (0: waits elapse at once)."""
    return _Simulation(stream, spec, rng, time_scale).run()


def run_all(
    stream: FaultStream, specs: Iterable[PolicySpec], *, seed: int | None = DEFAULT_SEED
) -> list[SimResult]:
    """Every policy on the same stream, each with its own jitter source seeded alike."""
    return [simulate(stream, spec, rng=random.Random(seed)) for spec in specs]


def specs_for(policies: Sequence[RetryPolicy]) -> list[PolicySpec]:
    """Users' policies run as the worker runs them: with stress awareness."""
    return [PolicySpec(p.name, p, stress_aware=True) for p in policies]


# --- the malformed-records scenario ------------------------------------------------------------


def malformed_stream(
    seed: int = DEFAULT_SEED,
    *,
    malformed: bool = True,
    share: float = MALFORMED_SHARE,
    chunks: int = DEFAULT_CHUNKS_PER_DEPENDENCY,
    slots: int = DEFAULT_SLOTS,
) -> FaultStream:
    """One healthy dependency (no outage, no rate limit, no noise) in which `share` of the
    chunks, picked by the seed, are malformed for good: a processing_error on every attempt.
    With `malformed=False`, the same stream (same chunks, same durations) with those chunks
    healthy: the pair measures what a few poisonous records cost the rest of the queue."""
    rng = random.Random(seed)
    ok_s = [round(rng.uniform(0.5, 1.5), 3) for _ in range(chunks)]
    bad = set(rng.sample(range(chunks), round(chunks * share)))
    scripts = tuple(
        ChunkScript(n + 1, (MALFORMED if malformed and n in bad else OK,), ok_s[n])
        for n in range(chunks)
    )
    return FaultStream(seed, (DependencyStream("dep1", slots, scripts),))
