"""One process's copy of a dependency's gate and retry budget (the state of chunksync.deps.gate).

The policy simulation runs a `RetryBudget` alone, on its own clock: it is the whole gate there.
A worker keeps one per dependency as its mirror of the shared row: step 6 reads it (is the
dependency stressed?) and charges it as outcomes come, step 3 holds chunks of a dependency that
stopped flowing since they were claimed, and step 7 sends what was charged since the last time
to the row (`drain`) and adopts the row's state in return (`adopt`). Both apply the same pure
rules, so what is simulated is what runs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from chunksync.deps import gate
from chunksync.deps.gate import DepState, Flow
from chunksync.models import ErrorCategory
from chunksync.retry import DEPENDENCY_FAULTS, HOLD_SPREAD, Gate, RandomSource, StressConfig

Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class Pending:
    """Outcomes charged to a budget since it last reported them to the shared row."""

    cost: float = 0.0
    successes: int = 0
    probe_succeeded: bool = False

    @property
    def empty(self) -> bool:
        return self.cost == 0.0 and self.successes == 0 and not self.probe_succeeded


class RetryBudget:
    """Token bucket and gate for one dependency, on one clock. Thread-safe."""

    def __init__(
        self,
        config: StressConfig | None = None,
        *,
        clock: Clock = time.monotonic,
        time_scale: float = 1.0,
    ) -> None:
        self.config = config or StressConfig()
        self.time_scale = time_scale  # the gate's intervals run this much faster (tests, demo)
        self._clock = clock
        self._state = gate.fresh(self.config)
        # Outcomes charged since the last drain, as plain fields: a success on a full, flowing
        # budget (the hot path) only counts one, with no object made.
        self._cost = 0.0
        self._successes = 0
        self._probe_ok = False
        # Drains so far, and reports drained but not yet adopted: a read of the shared rows
        # taken before a drain (or during a report) may miss the drained outcomes, and adopting
        # it would forget them here (see `mark` and `adopt`).
        self._drains = 0
        self._reporting = 0
        self._lock = threading.Lock()

    @property
    def state(self) -> DepState:
        return self._state

    @property
    def tokens(self) -> float:
        return self._state.tokens

    @property
    def stressed(self) -> bool:
        """Below the stress line, or not flowing (probing, or stopped by an operator)."""
        s = self._state
        return s.flow is not Flow.OK or s.tokens < self.config.capacity * self.config.threshold

    @property
    def flowing(self) -> bool:
        return self._state.flow is Flow.OK

    def on_failure(self, category: ErrorCategory, retryable: bool) -> None:
        """Charge a retryable failure that tells about the dependency (DEPENDENCY_FAULTS)."""
        if not retryable or category not in DEPENDENCY_FAULTS:
            return
        cost = self.config.timeout_cost if category is ErrorCategory.TIMEOUT else None
        self.charge(cost if cost is not None else self.config.failure_cost)

    def charge(self, cost: float) -> None:
        """Spend tokens; also how a source reports a throttling signal (IMAP [THROTTLED])."""
        self._record(cost=cost, successes=0, probe=False)

    def on_success(self, *, probe: bool = False) -> None:
        """A call that worked: a fraction of a token back; a probe's reopens the flow."""
        s = self._state
        if not probe and s.flow is Flow.OK and s.tokens >= self.config.capacity:
            with self._lock:  # nothing to change: a full, flowing budget stays so
                self._successes += 1
            return
        self._record(cost=0.0, successes=1, probe=probe)

    def _record(self, *, cost: float, successes: int, probe: bool) -> None:
        with self._lock:
            self._state = gate.record(
                self._state,
                self._timing(),
                cost=cost,
                successes=successes,
                probe_succeeded=probe,
                now=self._clock(),
            )
            self._cost += cost
            self._successes += successes
            self._probe_ok = self._probe_ok or probe

    def gate(self, now: float) -> Gate:
        """What the gate says to one call at `now` (taking the interval's probe if it is due)."""
        with self._lock:
            verdict, self._state = gate.admit(self._state, self._timing(), now)
        return verdict

    def shut(self, now: float) -> bool:
        """Not flowing and no probe due at `now` (read-only: it takes no probe)."""
        s = self._state
        if s.flow is Flow.OK:
            return False
        return s.flow is Flow.STOPPED or s.next_probe_at is None or now < s.next_probe_at

    def next_probe_at(self) -> float | None:
        s = self._state
        return s.next_probe_at if s.flow is Flow.PROBING else None

    @property
    def timing(self) -> StressConfig:
        return self._timing()

    def _timing(self) -> StressConfig:
        """The config with the gate's intervals multiplied by `time_scale`."""
        time_scale, c = self.time_scale, self.config
        if time_scale == 1.0:
            return c
        return replace(
            c,
            probe_interval_s=c.probe_interval_s * time_scale,
            probe_min_interval_s=c.probe_min_interval_s * time_scale,
        )

    def reconfigure(self, config: StressConfig) -> None:
        """Use another policy's limits, keeping the bucket as full (in proportion) as it was."""
        with self._lock:
            if config == self.config:
                return
            old = self.config.capacity
            fill = self._state.tokens / old if old > 0 else 1.0
            self.config = config
            tokens = min(config.capacity, max(0.0, fill * config.capacity))
            self._state = replace(self._state, tokens=tokens)

    # --- a worker's mirror of the shared row --------------------------------------------

    def drain(self) -> Pending:
        """What was charged since the last drain, to be reported to the shared row; the report
        ends with `reported`."""
        with self._lock:
            pending = Pending(self._cost, self._successes, self._probe_ok)
            self._cost, self._successes, self._probe_ok = 0.0, 0, False
            self._drains += 1
            self._reporting += 1
            return pending

    def reported(self, shared: DepState | None, shared_now: float = 0.0) -> None:
        """The report of a drain is over: adopt the row's state it returned (None: not sent)."""
        with self._lock:
            self._reporting -= 1
        if shared is not None:
            self.adopt(shared, shared_now)

    def mark(self) -> int:
        """Taken before a read of the shared rows, for `adopt(..., mark=)`."""
        return self._drains

    def worth_reporting(self, p: Pending) -> bool:
        """Whether the shared row must hear of these outcomes: a fault, a probe, or successes
        while the budget is not full and flowing (a healthy, full dependency's successes change
        nothing, so they cost no write)."""
        s = self._state
        if p.cost > 0 or p.probe_succeeded:
            return True
        return p.successes > 0 and (s.flow is not Flow.OK or s.tokens < self.config.capacity)

    def adopt(self, shared: DepState, shared_now: float, *, mark: int | None = None) -> None:
        """Take the shared row's state as this process's, its times moved from the database's
        clock (read at `shared_now`) to this budget's clock, with the outcomes charged here and
        not yet reported applied on top (the row has not heard of them). A read `mark`ed before
        a drain since, or while a report is on its way, is not adopted: it may miss outcomes
        drained from here and not yet in the row (the report adopts the row after them)."""
        now = self._clock()
        shift = now - shared_now

        def moved(t: float | None) -> float | None:
            return None if t is None else t + shift

        state = replace(
            shared, next_probe_at=moved(shared.next_probe_at), gated_since=moved(shared.gated_since)
        )
        with self._lock:
            if mark is not None and (mark != self._drains or self._reporting):
                return
            p = Pending(self._cost, self._successes, self._probe_ok)
            if not p.empty:
                state = gate.record(
                    state,
                    self._timing(),
                    cost=p.cost,
                    successes=p.successes,
                    probe_succeeded=p.probe_succeeded,
                    now=now,
                )
            self._state = state


class RetryBudgets:
    """One budget per dependency, created on first use; stress on A never touches B."""

    def __init__(
        self,
        config: StressConfig | None = None,
        *,
        clock: Clock = time.monotonic,
        time_scale: float = 1.0,
    ) -> None:
        self._config = config or StressConfig()
        self._clock = clock
        self._time_scale = time_scale
        self._budgets: dict[str, RetryBudget] = {}
        self._lock = threading.Lock()

    def get(self, dependency: str, config: StressConfig | None = None) -> RetryBudget:
        """The dependency's budget. `config`, the `[stress]` of the policy of the queue being
        processed, sets its limits; without it, a new budget gets this collection's default."""
        with self._lock:
            budget = self._budgets.get(dependency)
            if budget is None:
                budget = RetryBudget(
                    config or self._config, clock=self._clock, time_scale=self._time_scale
                )
                self._budgets[dependency] = budget
        if config is not None:
            budget.reconfigure(config)
        return budget

    def items(self) -> list[tuple[str, RetryBudget]]:
        with self._lock:
            return list(self._budgets.items())

    @property
    def time_scale(self) -> float:
        return self._time_scale

    def snapshot(self) -> dict[str, float]:
        with self._lock:
            return {dep: b.tokens for dep, b in self._budgets.items()}


def hold_delay(budget: RetryBudget, rng: RandomSource | None = None) -> float:
    """How long a chunk the gate refused waits, in policy seconds (before the budget's
    `time_scale`): the gate's current probe interval x U(1, 2), so that held chunks come back
    soon after a short outage, later while it lasts, and not all at once."""
    c, time_scale = budget.config, budget.time_scale
    interval = budget.state.probe_interval_s / time_scale if time_scale else 0.0
    interval = min(c.probe_interval_s, max(interval, c.probe_min_interval_s))
    return interval * (rng.uniform(1.0, HOLD_SPREAD) if rng is not None else 1.0)


def admit_or_hold(
    budget: RetryBudget, now: float, *, rng: RandomSource | None = None
) -> tuple[Gate, float]:
    """Step 3's pre-condition in the simulation: the gate's answer and, for a hold, how long to
    hold the chunk (`hold_delay`; else 0)."""
    verdict = budget.gate(now)
    return verdict, hold_delay(budget, rng) if verdict is Gate.HOLD else 0.0
