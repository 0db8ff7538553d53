"""Retry policies: backoff schedules and the retry decision.

A `RetryPolicy` is data: for each of the ten categories, whether it is retried, up to which
attempt, and on what schedule. `RetryPolicy.decide()` turns one failure into one `Decision`
(retry after a delay, defer without spending the attempt, or dead). The worker and the policy
benchmark both call it (through `decide_failure`), so what is measured is what runs.

Stress awareness: each dependency (the host or account behind a queue) has a retry budget, a
token bucket in the style of gRPC's retry throttling, and a gate in front of its calls; both are
shared by the fleet, in the database (chunksync.deps: the pure rules in `deps.gate`, the row in
`deps.store`, one process's copy in `deps.budget`). Only the dependency's own faults
(DEPENDENCY_FAULTS) cost tokens (a timeout costs two); every success gives a fraction back.
Below the stress line a chunk may have one more retry at double the delay, after which further
retries are deferred, run later without spending an attempt, so the dependency gets air and no
chunk is killed for the dependency's trouble. The `[stress]` table of a policy (StressConfig)
sets the budget's and the gate's limits.
"""

from __future__ import annotations

import enum
import math
import random
from collections.abc import Mapping, Set
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Protocol

from chunksync.exceptions import ConfigurationError
from chunksync.models import DEFAULT_MAX_ATTEMPTS, ErrorCategory
from chunksync.tomlfile import read_toml

MAX_DELAY_SECONDS = 3600.0
JITTER_FRACTION = 0.2
CRASH_LOOP_LIMIT = 3  # stuck this many times in a row: the chunk kills its worker (dead)
DEFAULT_POLICY_NAME = "default"
PROBE_INTERVAL_SECONDS = 1.5
HOLD_SPREAD = 2.0  # a held chunk waits probe_interval_s x U(1, HOLD_SPREAD)

C = ErrorCategory
# The failures that tell about the dependency, not the chunk: only these charge its retry budget,
# shut its gate or defer chunks for its sake. processing_error, not_found, permission,
# data_conflict and unknown are the chunk's own trouble, and auth is the account's credentials:
# retried (or not) by their category rule, never charged to a healthy dependency.
DEPENDENCY_FAULTS = frozenset({C.TIMEOUT, C.NETWORK, C.TEMPORARY, C.RATE_LIMIT})


class RandomSource(Protocol):
    def uniform(self, a: float, b: float) -> float: ...


class ScheduleKind(enum.StrEnum):
    EXPONENTIAL = "exponential"  # base, base*factor, base*factor^2, ...
    LINEAR = "linear"  # base, 2*base, 3*base, ...
    STEPS = "steps"  # the listed delays, the last one repeated


@dataclass(frozen=True, slots=True)
class Schedule:
    """Delay before retry number n (n = the attempt that just failed, from 1)."""

    kind: ScheduleKind = ScheduleKind.EXPONENTIAL
    base_s: float = 1.0
    factor: float = 2.0
    steps: tuple[float, ...] = ()
    max_s: float = MAX_DELAY_SECONDS

    def delay(self, attempt: int) -> float:
        n = max(1, attempt)
        if self.kind is ScheduleKind.STEPS:
            value = self.steps[min(n, len(self.steps)) - 1] if self.steps else self.base_s
        elif self.kind is ScheduleKind.LINEAR:
            value = self.base_s * n
        else:
            # Decide in logarithms whether the cap is reached, so that attempt 10**6 cannot
            # overflow; below the cap multiply exactly (5, 15, 45, not 4.999...).
            if self.base_s <= 0 or self.max_s <= 0:
                return 0.0
            growth = max(self.factor, 1.0)
            if math.log(self.base_s) + (n - 1) * math.log(growth) >= math.log(self.max_s):
                return float(self.max_s)
            value = self.base_s * growth ** (n - 1)
        return float(min(max(value, 0.0), self.max_s))


@dataclass(frozen=True, slots=True)
class CategoryRule:
    """`retry`: whether the category is retried at all; `limit`: retried while attempts <= limit
    (None: while attempts < the chunk's max_attempts)."""

    retry: bool
    schedule: Schedule = field(default_factory=Schedule)
    limit: int | None = None

    def allows(self, attempts: int, max_attempts: int) -> bool:
        if not self.retry or attempts >= max_attempts:
            return False
        return self.limit is None or attempts <= self.limit


@dataclass(frozen=True, slots=True)
class StressConfig:
    capacity: float = 10.0
    failure_cost: float = 1.0
    timeout_cost: float = 2.0
    success_refund: float = 0.1
    threshold: float = 0.5  # stressed below this fraction of capacity
    max_retries: int = 1  # retries a chunk may still have while its dependency is stressed
    delay_factor: float = 2.0
    defer_s: float = 30.0  # first deferral; doubles per deferral of the same chunk
    max_defer_s: float = 600.0
    max_deferrals: int = 3  # then the failure spends its attempt like any other
    # A failed probe tells about the dependency, not the chunk: the chunk chosen as probe is
    # deferred up to this many times (30 s doubling: about 15 minutes of outage) before
    # its attempts are spent. Each failed probe pushes its chunk back, so probes rotate and a
    # chunk that fails on its own cannot hold its queue.
    max_probe_deferrals: int = 5
    probe_interval_s: float = PROBE_INTERVAL_SECONDS  # while stressed, one call per interval
    # The shared gate (chunksync.deps.gate): its first probe comes this soon after it shuts,
    # each later one twice as late, up to probe_interval_s; it shuts this many tokens below the
    # stress line (one failure's worth), so that one stray failure right after it reopens (at
    # the line) does not shut it again.
    probe_min_interval_s: float = 0.5
    hysteresis: float = 1.0

    def defer_delay(self, deferrals: int) -> float:
        return min(self.max_defer_s, self.defer_s * 2.0 ** min(deferrals, 30))

    def hold_delay(self, rng: RandomSource | None = None) -> float:
        """How long a chunk held by the gate waits: probe_interval_s x U(1, 2), spread so that
        held chunks do not all come back at once, and back within two probes once it closes."""
        spread = rng.uniform(1.0, HOLD_SPREAD) if rng is not None else 1.0
        return self.probe_interval_s * spread


class Gate(enum.StrEnum):
    """What the gate says to one call: closed (call), probe (call, the interval's one), hold."""

    CLOSED = "closed"
    PROBE = "probe"
    HOLD = "hold"


class Action(enum.StrEnum):
    RETRY = "retry"
    DEFER = "defer"
    DEAD = "dead"


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    delay_s: float
    reason: str
    stress_retry: bool = False  # a retry granted while the dependency was stressed


def _default_rules() -> dict[ErrorCategory, CategoryRule]:
    never = CategoryRule(retry=False)
    standard = CategoryRule(True, Schedule(ScheduleKind.EXPONENTIAL, 1.0, 2.0))
    transient = CategoryRule(True, Schedule(ScheduleKind.EXPONENTIAL, 2.0, 2.0), limit=3)
    return {
        C.RATE_LIMIT: CategoryRule(True, Schedule(ScheduleKind.EXPONENTIAL, 5.0, 3.0), limit=2),
        C.NETWORK: transient,
        C.TEMPORARY: transient,
        C.TIMEOUT: CategoryRule(True, Schedule(ScheduleKind.LINEAR, 3.0), limit=3),
        C.AUTH: CategoryRule(True, Schedule(ScheduleKind.STEPS, steps=(2.0, 5.0)), limit=2),
        C.PERMISSION: never,
        C.NOT_FOUND: never,
        C.DATA_CONFLICT: never,
        C.PROCESSING_ERROR: standard,
        C.UNKNOWN: standard,
    }


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Schedules and limits per category; queues name the policy they use."""

    name: str = DEFAULT_POLICY_NAME
    rules: Mapping[ErrorCategory, CategoryRule] = field(default_factory=_default_rules)
    jitter: float = JITTER_FRACTION
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    stress: StressConfig = field(default_factory=StressConfig)
    # Full jitter (the delay drawn from [0, schedule delay], as tenacity's wait_random_exponential
    # and Celery's retry_jitter do) instead of the +-`jitter` fraction around the schedule.
    full_jitter: bool = False
    # How many times in a row a chunk may be found stuck (its worker died, stalled or lost the
    # database past its lease) before it is taken for a chunk that kills its worker.
    crash_loop_limit: int = CRASH_LOOP_LIMIT

    def rule(self, category: ErrorCategory) -> CategoryRule:
        return self.rules.get(category) or _default_rules()[category]

    def is_retryable(self, category: ErrorCategory) -> bool:
        return self.rule(category).retry

    def backoff(
        self, category: ErrorCategory, attempt: int, rng: RandomSource | None = None
    ) -> float:
        """The schedule's delay for `attempt`, with +-jitter when a random source is given."""
        delay = self.rule(category).schedule.delay(attempt)
        if rng is not None and self.full_jitter:
            delay = rng.uniform(0.0, delay)
        elif rng is not None and self.jitter > 0:
            delay *= rng.uniform(1.0 - self.jitter, 1.0 + self.jitter)
        return max(0.0, delay)

    def decide(
        self,
        category: ErrorCategory,
        attempts: int,
        *,
        max_attempts: int | None = None,
        retry_after_s: float | None = None,
        stressed: bool = False,
        stress_retries: int = 0,
        deferrals: int = 0,
        rng: RandomSource | None = None,
        probe: bool = False,
    ) -> Decision:
        """Decide what happens after attempt number `attempts` failed with `category`.

        Only the category rules kill a chunk; stress can only defer it or stretch the delay.
        A failed `probe` (the gate's one call while stressed) of a retryable category is deferred
        while the chunk has deferrals left, whatever its attempts: its attempt is not spent.
        """
        limit = self.max_attempts if max_attempts is None else max_attempts
        rule = self.rule(category)
        if not rule.retry:
            return Decision(Action.DEAD, 0.0, f"{category.value} is never retried")
        floor = 0.0 if retry_after_s is None else max(0.0, retry_after_s)
        if probe and deferrals < self.stress.max_probe_deferrals:
            wait = max(self.stress.defer_delay(deferrals), floor)
            return Decision(Action.DEFER, wait, "probe failed: deferred, attempt not spent")
        if not rule.allows(attempts, limit):
            # Being told to wait is no reason to give up on a chunk that has attempts left (its
            # earlier attempts may have failed for other reasons): defer, attempt not spent.
            if (
                category is C.RATE_LIMIT
                and attempts < limit
                and deferrals < self.stress.max_deferrals
            ):
                wait = max(self.stress.defer_delay(deferrals), floor)
                return Decision(Action.DEFER, wait, "rate_limit: deferred, attempt not spent")
            return Decision(Action.DEAD, 0.0, f"{category.value}: out of retries after {attempts}")
        delay = max(self.backoff(category, attempts, rng), floor)
        if not stressed:
            return Decision(Action.RETRY, delay, f"{category.value}: retry {attempts}")
        if stress_retries < self.stress.max_retries:
            stretched = min(delay * self.stress.delay_factor, MAX_DELAY_SECONDS)
            return Decision(
                Action.RETRY,
                max(stretched, floor),
                "dependency stressed: last retry, delay doubled",
                stress_retry=True,
            )
        if deferrals < self.stress.max_deferrals:
            wait = max(self.stress.defer_delay(deferrals), floor)
            return Decision(Action.DEFER, wait, "dependency stressed: deferred, attempt not spent")
        return Decision(Action.RETRY, delay, f"{category.value}: retry {attempts} (deferrals used)")

    def scaled(self, factor: float) -> RetryPolicy:
        """The same policy with every delay multiplied by `factor` (the demo's --time-scale)."""

        def scale(s: Schedule) -> Schedule:
            return replace(
                s,
                base_s=s.base_s * factor,
                steps=tuple(x * factor for x in s.steps),
                max_s=s.max_s * factor,
            )

        rules = {c: replace(r, schedule=scale(r.schedule)) for c, r in self.rules.items()}
        stress = replace(
            self.stress,
            defer_s=self.stress.defer_s * factor,
            max_defer_s=self.stress.max_defer_s * factor,
            probe_interval_s=self.stress.probe_interval_s * factor,
            probe_min_interval_s=self.stress.probe_min_interval_s * factor,
        )
        return replace(self, rules=rules, stress=stress)


DEFAULT_POLICY = RetryPolicy()


class Budget(Protocol):
    """What the retry decision needs of a dependency's budget (chunksync.deps.budget)."""

    @property
    def stressed(self) -> bool: ...

    def on_failure(self, category: ErrorCategory, retryable: bool) -> None: ...


def decide_failure(
    policy: RetryPolicy,
    budget: Budget,
    category: ErrorCategory,
    *,
    attempts: int,
    max_attempts: int,
    retry_after_s: float | None,
    stress_retries: int,
    deferrals: int,
    rng: RandomSource | None,
    probe: bool = False,
) -> Decision:
    """The retry decision for one failed attempt: charge the dependency's budget, then decide.

    Only a dependency's own faults (DEPENDENCY_FAULTS) charge it, and only they are deferred or
    stretched for its stress or count as a failed probe: a malformed record on a healthy (or a
    stressed) dependency spends its attempts at its category's pace and goes dead.
    The worker's step 6 and the policy benchmark (chunksync.simulate) both call this.
    """
    fault = category in DEPENDENCY_FAULTS
    budget.on_failure(category, policy.is_retryable(category))
    return policy.decide(
        category,
        attempts,
        max_attempts=max_attempts,
        retry_after_s=retry_after_s,
        stressed=fault and budget.stressed,
        stress_retries=stress_retries,
        deferrals=deferrals,
        rng=rng,
        probe=probe and fault,
    )


def seeded_rng(seed: int | None) -> random.Random:
    return random.Random(seed)


# --- policies from TOML ------------------------------------------------------------------------

_SCHEDULE_KEYS = {"schedule", "base_s", "factor", "steps", "max_s"}


def _schedule_from(data: Mapping[str, Any], where: str) -> Schedule:
    try:
        kind = ScheduleKind(data.get("schedule", "exponential"))
        steps = tuple(float(x) for x in data.get("steps", ()))
        base = float(data.get("base_s", steps[0] if steps else 1.0))
        schedule = Schedule(
            kind,
            base,
            float(data.get("factor", 2.0)),
            steps,
            float(data.get("max_s", MAX_DELAY_SECONDS)),
        )
    except (ValueError, TypeError) as exc:
        raise ConfigurationError(f"{where}: invalid schedule ({exc})") from None
    values = (base, schedule.factor, schedule.max_s, *steps)
    if not all(math.isfinite(x) and x >= 0 for x in values):
        raise ConfigurationError(f"{where}: delays must be finite and non-negative")
    if kind is ScheduleKind.STEPS and not steps:
        raise ConfigurationError(f"{where}: schedule 'steps' needs a non-empty 'steps' list")
    return schedule


def _rule_from(data: Any, where: str) -> CategoryRule:
    if not isinstance(data, Mapping):
        raise ConfigurationError(f"{where}: expected a table")
    check_keys(data, _SCHEDULE_KEYS | {"retry", "limit"}, f"[{where}]")
    limit = data.get("limit")
    if limit is not None and (not isinstance(limit, int) or limit < 0):
        raise ConfigurationError(f"{where}: 'limit' must be a whole number >= 0")
    return CategoryRule(bool(data.get("retry", True)), _schedule_from(data, where), limit)


def policy_from_mapping(data: Mapping[str, Any], *, name: str | None = None) -> RetryPolicy:
    """Build a policy from a parsed TOML document; unknown keys and categories are errors."""
    check_keys(data, POLICY_KEYS, "the top level")
    check_keys(data.get("stress", {}), {f.name for f in fields(StressConfig)}, "[stress]")
    rules = _default_rules()
    for key, value in dict(data.get("categories", {})).items():
        try:
            category = ErrorCategory(key)
        except ValueError:
            raise ConfigurationError(f"unknown error category '{key}' in policy") from None
        rules[category] = _rule_from(value, f"categories.{key}")
    try:
        stress = StressConfig(**dict(data.get("stress", {})))
        jitter = float(data.get("jitter", JITTER_FRACTION))
        max_attempts = int(data.get("max_attempts", DEFAULT_MAX_ATTEMPTS))
        full_jitter = data.get("full_jitter", False)
        crash_loop_limit = int(data.get("crash_loop_limit", CRASH_LOOP_LIMIT))
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(f"invalid policy setting: {exc}") from None
    if not 0.0 <= jitter < 1.0 or max_attempts < 1:
        raise ConfigurationError("jitter must be in [0, 1) and max_attempts at least 1")
    if crash_loop_limit < 1:
        raise ConfigurationError("crash_loop_limit must be at least 1")
    probe = stress.probe_interval_s
    if isinstance(probe, bool) or not isinstance(probe, int | float) or not 0 <= probe < math.inf:
        raise ConfigurationError("stress.probe_interval_s must be a finite number of seconds >= 0")
    stress = replace(stress, probe_interval_s=float(probe))
    policy_name = name or str(data.get("name", DEFAULT_POLICY_NAME))
    if not isinstance(full_jitter, bool):
        raise ConfigurationError("full_jitter must be true or false")
    return RetryPolicy(
        policy_name, rules, jitter, max_attempts, stress, full_jitter, crash_loop_limit
    )


def load_policy(path: str | Path) -> RetryPolicy:
    """Read a policy from a TOML file (see docs/policies.md); a mistake names the file."""
    p = Path(path)
    data = read_toml(p, "policy file")
    try:
        return policy_from_mapping(data, name=data.get("name") or p.stem)
    except ConfigurationError as exc:
        raise ConfigurationError(f"policy file {p}: {exc}") from None


# A policy file may hold [dependencies."NAME"] tables beside its policy (chunksync.loader).
POLICY_KEYS = frozenset(
    {"name", "jitter", "max_attempts", "full_jitter", "crash_loop_limit", "categories"}
    | {"stress", "dependencies"}
)


def check_keys(data: Any, valid: Set[str], table: str) -> None:
    """One sentence for a key nobody reads (a typo would otherwise be silently ignored, or
    surface as a Python TypeError): the table, the key and the valid keys."""
    if not isinstance(data, Mapping):
        raise ConfigurationError(f"{table} must be a table")
    unknown = sorted(set(data) - set(valid))
    if unknown:
        raise ConfigurationError(
            f"{table} has an unknown key '{unknown[0]}'; valid keys are {', '.join(sorted(valid))}"
        )


def policy_to_mapping(policy: RetryPolicy) -> dict[str, Any]:
    """The policy as plain data: the TOML file's shape, and the JSON the SQL functions read
    (`chunksync_retry_decision(..., p_policy)`). `policy_from_mapping` reads it back."""
    categories = {
        category.value: {
            "retry": rule.retry,
            "schedule": rule.schedule.kind.value,
            "base_s": rule.schedule.base_s,
            "factor": rule.schedule.factor,
            "steps": list(rule.schedule.steps),
            "max_s": rule.schedule.max_s,
            "limit": rule.limit,
        }
        for category in ErrorCategory
        for rule in [policy.rule(category)]
    }
    stress = {f.name: getattr(policy.stress, f.name) for f in fields(policy.stress)}
    return {
        "name": policy.name,
        "jitter": policy.jitter,
        "max_attempts": policy.max_attempts,
        "crash_loop_limit": policy.crash_loop_limit,
        "categories": categories,
        "stress": stress,
    }
