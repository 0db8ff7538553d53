"""The retry policy: the original backoff cases, every retry rule, stress, TOML policies."""

from __future__ import annotations

import math
import random
import threading
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chunksync.deps.budget import RetryBudget, RetryBudgets, admit_or_hold
from chunksync.exceptions import ConfigurationError
from chunksync.models import ChunkStatus, ErrorCategory
from chunksync.retry import (
    DEFAULT_POLICY,
    DEPENDENCY_FAULTS,
    MAX_DELAY_SECONDS,
    Action,
    Gate,
    Schedule,
    ScheduleKind,
    StressConfig,
    decide_failure,
    load_policy,
    policy_from_mapping,
    policy_to_mapping,
)

C = ErrorCategory
CATEGORIES = list(ErrorCategory)


# The original system's nine backoff cases, in milliseconds.
@pytest.mark.parametrize(
    ("category", "attempt", "expected_ms"),
    [
        (C.RATE_LIMIT, 1, 5000),
        (C.RATE_LIMIT, 2, 15000),
        (C.RATE_LIMIT, 3, 45000),
        (C.NETWORK, 1, 2000),
        (C.NETWORK, 2, 4000),
        (C.NETWORK, 3, 8000),
        (C.TIMEOUT, 1, 3000),
        (C.TIMEOUT, 2, 6000),
        (C.TIMEOUT, 3, 9000),
    ],
)
def test_original_backoff_cases(category: ErrorCategory, attempt: int, expected_ms: int) -> None:
    assert DEFAULT_POLICY.backoff(category, attempt) * 1000 == pytest.approx(expected_ms)


@pytest.mark.parametrize(
    ("category", "delays"),
    [
        (C.TEMPORARY, [2, 4, 8]),
        (C.AUTH, [2, 5, 5]),
        (C.PROCESSING_ERROR, [1, 2, 4]),
        (C.UNKNOWN, [1, 2, 4]),
    ],
)
def test_other_schedules(category: ErrorCategory, delays: list[float]) -> None:
    assert [DEFAULT_POLICY.backoff(category, n) for n in (1, 2, 3)] == delays


@pytest.mark.parametrize(
    ("category", "last_retried_attempt"),
    [
        (C.PERMISSION, 0),
        (C.NOT_FOUND, 0),
        (C.DATA_CONFLICT, 0),
        (C.RATE_LIMIT, 2),
        (C.NETWORK, 3),
        (C.TEMPORARY, 3),
        (C.TIMEOUT, 3),
        (C.AUTH, 2),
        (C.PROCESSING_ERROR, 4),
        (C.UNKNOWN, 4),
    ],
)
def test_retry_rules(category: ErrorCategory, last_retried_attempt: int) -> None:
    """Retried while attempts <= the category's limit (else while attempts < max_attempts=5)."""
    for attempts in range(1, 8):
        decision = DEFAULT_POLICY.decide(category, attempts, max_attempts=5)
        expected = Action.RETRY if attempts <= last_retried_attempt else Action.DEAD
        if category is C.RATE_LIMIT and last_retried_attempt < attempts < 5:
            expected = Action.DEFER  # told to wait, attempts left: deferred, not dead
        assert decision.action is expected, (category, attempts)


def test_a_rate_limit_past_its_limit_defers_while_attempts_and_deferrals_last() -> None:
    """Found by the chaos run: two network failures then a [LIMIT] killed a chunk."""
    first = DEFAULT_POLICY.decide(C.RATE_LIMIT, 3, retry_after_s=45.0)
    assert first.action is Action.DEFER and first.delay_s == 45.0
    assert DEFAULT_POLICY.decide(C.RATE_LIMIT, 3, deferrals=2).delay_s == 120.0
    assert DEFAULT_POLICY.decide(C.RATE_LIMIT, 3, deferrals=3).action is Action.DEAD
    assert DEFAULT_POLICY.decide(C.RATE_LIMIT, 5).action is Action.DEAD  # out of attempts


def test_max_attempts_of_the_chunk_bounds_every_category() -> None:
    assert DEFAULT_POLICY.decide(C.NETWORK, 2, max_attempts=2).action is Action.DEAD
    assert DEFAULT_POLICY.decide(C.NETWORK, 1, max_attempts=2).action is Action.RETRY


def test_retry_after_is_a_floor() -> None:
    decision = DEFAULT_POLICY.decide(C.RATE_LIMIT, 1, retry_after_s=120.0)
    assert decision.action is Action.RETRY and decision.delay_s == 120.0
    assert DEFAULT_POLICY.decide(C.RATE_LIMIT, 1, retry_after_s=1.0).delay_s == 5.0


def test_jitter_stays_within_twenty_percent_and_is_injectable() -> None:
    rng = random.Random(3)
    delays = [DEFAULT_POLICY.backoff(C.NETWORK, 2, rng) for _ in range(500)]
    assert min(delays) >= 4 * 0.8 and max(delays) <= 4 * 1.2
    assert len(set(delays)) > 100
    assert DEFAULT_POLICY.backoff(C.NETWORK, 2, None) == 4.0


def test_stress_allows_one_more_retry_with_doubled_delay_then_defers() -> None:
    first = DEFAULT_POLICY.decide(C.NETWORK, 1, stressed=True, stress_retries=0)
    assert first.action is Action.RETRY and first.stress_retry and first.delay_s == 4.0
    second = DEFAULT_POLICY.decide(C.NETWORK, 2, stressed=True, stress_retries=1)
    assert second.action is Action.DEFER and second.delay_s == 30.0
    later = DEFAULT_POLICY.decide(C.NETWORK, 2, stressed=True, stress_retries=1, deferrals=2)
    assert later.action is Action.DEFER and later.delay_s == 120.0


def test_stress_never_kills_and_category_rules_still_do() -> None:
    assert DEFAULT_POLICY.decide(C.NOT_FOUND, 1, stressed=True).action is Action.DEAD
    spent = DEFAULT_POLICY.decide(C.NETWORK, 1, stressed=True, stress_retries=1, deferrals=3)
    assert spent.action is Action.RETRY  # deferrals used up: the attempt is spent as usual


@pytest.mark.parametrize("category", sorted(set(C) - DEPENDENCY_FAULTS))
def test_only_the_dependencys_own_faults_charge_it(category: C) -> None:
    budget = RetryBudget(StressConfig(capacity=10))
    for _ in range(20):
        decision = decide_failure(
            DEFAULT_POLICY,
            budget,
            category,
            attempts=1,
            max_attempts=5,
            retry_after_s=None,
            stress_retries=0,
            deferrals=0,
            rng=None,
            probe=True,
        )
        assert decision.action is not Action.DEFER  # a probe failing on its own data is no probe
    assert budget.tokens == 10 and not budget.stressed


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_budget_drains_on_retryable_failures_and_refills_on_success() -> None:
    budget = RetryBudget(StressConfig(capacity=10))
    for _ in range(5):
        budget.on_failure(C.NETWORK, retryable=True)
    assert budget.tokens == 5 and not budget.stressed
    budget.on_failure(C.TIMEOUT, retryable=True)  # a timeout costs two
    assert budget.tokens == 3 and budget.stressed
    budget.on_failure(C.NOT_FOUND, retryable=False)
    assert budget.tokens == 3
    # A success while the gate is shut (below 4: one failure's worth under the stress line)
    # reopens the flow with the tokens at the stress line (5).
    budget.on_success()
    assert budget.tokens == 5 and not budget.stressed
    for _ in range(25):
        budget.on_success()
    assert budget.tokens == pytest.approx(7.5) and not budget.stressed


def test_a_read_of_the_shared_row_older_than_a_report_is_not_adopted() -> None:
    # The claim loop reads the rows (full: the report is not in yet), the result writer drains
    # a failure and records it, then the claim loop's stale read must not refill the bucket.
    from chunksync.deps import gate

    budget = RetryBudget(StressConfig(capacity=4))
    full = gate.fresh(budget.config)
    mark = budget.mark()  # the claim loop starts its read
    budget.on_failure(C.NETWORK, retryable=True)
    pending = budget.drain()  # the writer's report is on its way
    budget.adopt(full, 0.0, mark=budget.mark())  # a read begun during the report: skipped
    assert budget.tokens == 3
    after = gate.record(
        full, budget.config, cost=pending.cost, successes=0, probe_succeeded=False, now=0.0
    )
    budget.reported(after, 0.0)
    budget.adopt(full, 0.0, mark=mark)  # the read from before the report: skipped too
    assert budget.tokens == 3
    budget.adopt(full, 0.0, mark=budget.mark())  # a read after it: adopted (a peer refilled)
    assert budget.tokens == 4


def test_stress_on_one_dependency_never_touches_another() -> None:
    budgets = RetryBudgets()
    for _ in range(10):
        budgets.get("imap://a@host-a").on_failure(C.NETWORK, retryable=True)
    assert budgets.get("imap://a@host-a").stressed
    assert not budgets.get("imap://b@host-b").stressed


def stressed_budget(clock: Clock | None = None, **config: float) -> RetryBudget:
    budget = RetryBudget(
        StressConfig(capacity=10, **config),  # type: ignore[arg-type]
        clock=clock or Clock(),
    )
    for _ in range(7):  # below the stress line (5) by more than the hysteresis (1): shut
        budget.on_failure(C.NETWORK, retryable=True)
    assert budget.tokens == 3 and budget.stressed and not budget.flowing
    return budget


def test_the_gate_is_closed_while_the_budget_is_not_stressed() -> None:
    budget = RetryBudget()
    assert all(budget.gate(t * 0.001) is Gate.CLOSED for t in range(100))
    assert admit_or_hold(budget, 0.0) == (Gate.CLOSED, 0.0)


def test_a_shut_gate_probes_soon_then_less_often() -> None:
    # it shut at 100: the first probe 0.5 s later; probe_interval_s 5 s shows the doubling
    budget = stressed_budget(Clock(100.0), probe_interval_s=5.0)
    assert budget.shut(100.2) and budget.next_probe_at() == 100.5
    seen = {t / 10: budget.gate(t / 10) for t in range(1000, 1200)}  # asked every 0.1 s
    probes = [t for t, g in seen.items() if g is Gate.PROBE]
    # The interval doubles from 0.5 s up to probe_interval_s: one call at a time.
    assert probes == [100.5, 101.0, 102.0, 104.0, 108.0, 113.0, 118.0]
    assert budget.gate(200.0) is Gate.PROBE  # idle for long: still one at a time
    assert budget.gate(200.1) is Gate.HOLD


def test_a_failed_probe_keeps_the_gate_shut_and_a_success_reopens_it() -> None:
    clock = Clock()
    budget = stressed_budget(clock)
    assert budget.gate(0.0) is Gate.HOLD and budget.gate(0.5) is Gate.PROBE
    budget.on_failure(C.NETWORK, retryable=True)  # the probe failed
    assert budget.tokens == 2 and budget.stressed and budget.gate(0.9) is Gate.HOLD
    assert budget.gate(1.0) is Gate.PROBE
    budget.on_success(probe=True)  # this probe succeeded: flowing, the tokens at the line
    assert budget.tokens == 5 and not budget.stressed
    assert all(budget.gate(1.0 + n * 0.01) is Gate.CLOSED for n in range(50))
    budget.on_failure(C.NETWORK, retryable=True)  # one stray failure: stressed, still flowing
    assert budget.stressed and budget.flowing and budget.tokens == 4
    clock.now = 3.0
    budget.on_failure(C.NETWORK, retryable=True)  # a second: shut again, probing from the start
    assert budget.stressed and budget.next_probe_at() == 3.5
    assert budget.gate(3.4) is Gate.HOLD and budget.gate(3.5) is Gate.PROBE


def test_a_refused_call_is_held_for_one_to_two_probe_intervals() -> None:
    budget = stressed_budget(probe_interval_s=4.0)
    assert admit_or_hold(budget, 0.0) == (Gate.HOLD, 0.5)  # no random source: one interval
    holds = [admit_or_hold(budget, 0.1, rng=random.Random(n)) for n in range(200)]
    assert all(g is Gate.HOLD and 0.5 <= h <= 1.0 for g, h in holds)
    assert len(set(holds)) > 100
    for _ in range(5):  # probes while the outage lasts: the interval, and the hold, grow
        now = budget.next_probe_at()
        assert now is not None and budget.gate(now) is Gate.PROBE
    assert admit_or_hold(budget, budget.next_probe_at() - 0.1) == (Gate.HOLD, 4.0)  # type: ignore[operator]
    # time_scale shrinks the gate's intervals (the worker's and the simulation's clocks), not
    # the hold it returns, which is in policy seconds like every delay.
    config = StressConfig(capacity=10, probe_interval_s=4.0)
    scaled = RetryBudget(config, clock=Clock(), time_scale=0.001)
    scaled.charge(7.0)  # below the stress line by more than the hysteresis: shut
    assert admit_or_hold(scaled, 0.0) == (Gate.HOLD, 0.5)
    assert admit_or_hold(scaled, 0.0005) == (Gate.PROBE, 0.0)
    assert admit_or_hold(scaled, 0.0006) == (Gate.HOLD, 1.0)  # the interval has grown


def test_a_failed_probe_defers_its_chunk_and_never_spends_its_last_attempt() -> None:
    # Attempt 4 of a network failure is past its limit (3): dead, unless it was the gate's probe.
    assert (
        DEFAULT_POLICY.decide(C.NETWORK, 4, stressed=True, stress_retries=1).action is Action.DEAD
    )
    probe = DEFAULT_POLICY.decide(C.NETWORK, 4, stressed=True, stress_retries=1, probe=True)
    assert probe.action is Action.DEFER and probe.delay_s == 30.0
    retry_after = DEFAULT_POLICY.decide(C.RATE_LIMIT, 1, retry_after_s=90.0, probe=True)
    assert retry_after.action is Action.DEFER and retry_after.delay_s == 90.0
    assert DEFAULT_POLICY.decide(C.NOT_FOUND, 1, probe=True).action is Action.DEAD
    # A probe may be deferred up to max_probe_deferrals (5) times: 30 s doubling, ~15 minutes.
    fifth = DEFAULT_POLICY.decide(C.NETWORK, 4, stressed=True, deferrals=4, probe=True)
    assert fifth.action is Action.DEFER and fifth.delay_s == 480.0
    used = DEFAULT_POLICY.decide(C.NETWORK, 4, stressed=True, deferrals=5, probe=True)
    assert used.action is Action.DEAD  # deferrals used up: the category rules as usual


def test_only_one_of_many_threads_gets_the_probe() -> None:
    budget = stressed_budget()
    assert budget.gate(0.0) is Gate.HOLD
    start = threading.Barrier(16)
    admitted: list[bool] = []
    lock = threading.Lock()

    def claim() -> None:
        start.wait()
        got = [budget.gate(0.5 + n * 1e-6) is Gate.PROBE for n in range(200)]
        with lock:
            admitted.extend(got)

    threads = [threading.Thread(target=claim) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(admitted) == 16 * 200 and sum(admitted) == 1


def test_the_budget_takes_the_policy_stress_config() -> None:
    budgets = RetryBudgets()
    small = StressConfig(capacity=4, threshold=0.5, probe_interval_s=1.0)
    budget = budgets.get("pages://api.example.com", small)
    assert budget.config == small and budget.tokens == 4
    for _ in range(3):
        budget.on_failure(C.NETWORK, retryable=True)
    assert budget.stressed  # 1 < 2: a default bucket (10 tokens) would not be stressed
    assert budgets.get("pages://api.example.com") is budget and budget.config == small
    budgets.get("pages://api.example.com", StressConfig(capacity=8))
    assert budget.tokens == 2  # another policy's limits: the bucket stays a quarter full
    assert budgets.get("pages://other.example.com").config == StressConfig()


@given(
    category=st.sampled_from(CATEGORIES),
    attempt=st.integers(min_value=0, max_value=10**6),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_backoff_is_finite_and_bounded_for_any_attempt(
    category: ErrorCategory, attempt: int, seed: int
) -> None:
    delay = DEFAULT_POLICY.backoff(category, attempt, random.Random(seed))
    assert math.isfinite(delay) and 0 <= delay <= MAX_DELAY_SECONDS * 1.2


@given(
    category=st.sampled_from(CATEGORIES),
    attempts=st.integers(min_value=1, max_value=10**6),
    retry_after=st.none() | st.floats(min_value=0, max_value=3600),
    stressed=st.booleans(),
    stress_retries=st.integers(0, 5),
    deferrals=st.integers(0, 50),
)
def test_decide_never_sooner_than_retry_after(
    category: ErrorCategory,
    attempts: int,
    retry_after: float | None,
    stressed: bool,
    stress_retries: int,
    deferrals: int,
) -> None:
    decision = DEFAULT_POLICY.decide(
        category,
        attempts,
        retry_after_s=retry_after,
        stressed=stressed,
        stress_retries=stress_retries,
        deferrals=deferrals,
    )
    assert math.isfinite(decision.delay_s) and decision.delay_s >= 0
    if decision.action is not Action.DEAD and retry_after is not None:
        assert decision.delay_s >= retry_after


@given(st.integers(min_value=-5, max_value=10**6))
def test_every_schedule_kind_is_monotonic_and_finite(n: int) -> None:
    for schedule in (
        Schedule(ScheduleKind.EXPONENTIAL, 1.0, 10.0),
        Schedule(ScheduleKind.LINEAR, 3.0),
        Schedule(ScheduleKind.STEPS, steps=(1.0, 7.0)),
    ):
        assert 0 <= schedule.delay(n) <= schedule.delay(n + 1) <= MAX_DELAY_SECONDS


def test_policy_from_toml(tmp_path: Path) -> None:
    path = tmp_path / "gentle.toml"
    path.write_text(
        "jitter = 0.1\nmax_attempts = 8\n"
        '[categories.rate_limit]\nschedule = "exponential"\nbase_s = 10\nfactor = 2\nlimit = 4\n'
        '[categories.not_found]\nretry = true\nschedule = "steps"\nsteps = [60, 600]\nlimit = 2\n'
        "[stress]\nmax_deferrals = 1\ncapacity = 20\nprobe_interval_s = 2\n",
        encoding="utf-8",
    )
    policy = load_policy(path)
    assert policy.name == "gentle" and policy.max_attempts == 8
    assert policy.stress.probe_interval_s == 2.0 and policy.stress.capacity == 20
    assert DEFAULT_POLICY.stress.probe_interval_s == 1.5
    assert policy.scaled(0.5).stress.probe_interval_s == 1.0
    assert [policy.backoff(C.RATE_LIMIT, n) for n in (1, 2, 3)] == [10, 20, 40]
    assert policy.decide(C.RATE_LIMIT, 4).action is Action.RETRY
    assert policy.decide(C.NOT_FOUND, 1).delay_s == 60
    assert policy.decide(C.NOT_FOUND, 3).action is Action.DEAD
    assert policy.rule(C.NETWORK) == DEFAULT_POLICY.rule(C.NETWORK)


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("this is = not toml [", "not valid TOML"),
        ("[categories.sleepy]\nretry = true\n", "unknown error category 'sleepy'"),
        ('[categories.network]\nschedule = "cubic"\n', "invalid schedule"),
        ("[categories.network]\nbase_s = -1\n", "finite and non-negative"),
        ('[categories.network]\nschedule = "steps"\n', "non-empty 'steps'"),
        ("[categories.network]\nlimt = 3\n", r"\[categories.network\] has an unknown key .limt."),
        ("jitter = 2\n", "jitter must be"),
        (
            "[stress]\nbucket = 3\n",
            r"bad.toml: \[stress\] has an unknown key .bucket.; valid keys are .*max_probe_def",
        ),
        ("bogus = 1\n", "the top level has an unknown key .bogus."),
        ("[stress]\nprobe_interval_s = -1\n", "probe_interval_s"),
        ("[stress]\nprobe_interval_s = inf\n", "probe_interval_s"),
        ('[stress]\nprobe_interval_s = "5"\n', "probe_interval_s"),
    ],
)
def test_bad_policy_files_get_one_clear_error(tmp_path: Path, text: str, complaint: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigurationError, match=complaint):
        load_policy(path)


def test_missing_policy_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="does not exist"):
        load_policy(tmp_path / "nope.toml")


def test_mail_policy_outlasts_the_default_on_the_path_to_the_server() -> None:
    from chunksync.runtime.recovery import stuck_verdict
    from chunksync.sources.mail import MAIL_POLICY

    assert MAIL_POLICY.name == "mail"
    for category in (ErrorCategory.NETWORK, ErrorCategory.TEMPORARY, ErrorCategory.TIMEOUT):
        assert DEFAULT_POLICY.decide(category, 4).action is Action.DEAD
        assert MAIL_POLICY.decide(category, 10).action is Action.RETRY
        assert MAIL_POLICY.decide(category, 11).action is Action.DEAD
        assert MAIL_POLICY.backoff(category, 30) <= 120.0
    # Credentials and the rest keep the default rules.
    for category in (ErrorCategory.AUTH, ErrorCategory.NOT_FOUND, ErrorCategory.DATA_CONFLICT):
        assert MAIL_POLICY.rule(category) == DEFAULT_POLICY.rule(category)
    # A mail chunk whose worker died on its fifth attempt goes back to pending.
    verdict = stuck_verdict(
        MAIL_POLICY, attempts=5, max_attempts=MAIL_POLICY.max_attempts, crash_count=0
    )
    assert verdict == (ChunkStatus.PENDING, "stuck")


def test_the_crash_loop_limit_is_the_policys() -> None:
    from chunksync.runtime.recovery import stuck_verdict
    from chunksync.sources.mail import MAIL_POLICY

    patient = policy_from_mapping({"crash_loop_limit": 5})
    assert patient.crash_loop_limit == 5
    assert policy_from_mapping(policy_to_mapping(patient)).crash_loop_limit == 5
    with pytest.raises(ConfigurationError, match="crash_loop_limit"):
        policy_from_mapping({"crash_loop_limit": 0})

    def verdict(policy: Any, crashes_before: int) -> tuple[ChunkStatus, str]:
        return stuck_verdict(policy, attempts=1, max_attempts=12, crash_count=crashes_before)

    assert verdict(DEFAULT_POLICY, 2) == (ChunkStatus.DEAD, "crash_loop")  # the third in a row
    assert verdict(patient, 2) == (ChunkStatus.PENDING, "stuck")
    assert verdict(patient, 4) == (ChunkStatus.DEAD, "crash_loop")
    # Mail: a worker that dies holding a mail chunk was almost never killed by it.
    assert MAIL_POLICY.crash_loop_limit == 6
    assert verdict(MAIL_POLICY, 4) == (ChunkStatus.PENDING, "stuck")
    assert verdict(MAIL_POLICY, 5) == (ChunkStatus.DEAD, "crash_loop")
