"""The retry policy: the original backoff cases, every retry rule, stress, TOML policies."""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chunksync.exceptions import ConfigurationError
from chunksync.models import ErrorCategory
from chunksync.retry import (
    DEFAULT_POLICY,
    MAX_DELAY_SECONDS,
    Action,
    RetryBudget,
    RetryBudgets,
    Schedule,
    ScheduleKind,
    StressConfig,
    load_policy,
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
        (C.AUTH, 1),
        (C.PROCESSING_ERROR, 4),
        (C.UNKNOWN, 4),
    ],
)
def test_retry_rules(category: ErrorCategory, last_retried_attempt: int) -> None:
    """Retried while attempts <= the category's limit (else while attempts < max_attempts=5)."""
    for attempts in range(1, 8):
        decision = DEFAULT_POLICY.decide(category, attempts, max_attempts=5)
        expected = Action.RETRY if attempts <= last_retried_attempt else Action.DEAD
        assert decision.action is expected, (category, attempts)


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


def test_budget_drains_on_retryable_failures_and_refills_on_success() -> None:
    budget = RetryBudget(StressConfig(capacity=10))
    for _ in range(5):
        budget.on_failure(C.NETWORK, retryable=True)
    assert budget.tokens == 5 and not budget.stressed
    budget.on_failure(C.TIMEOUT, retryable=True)  # a timeout costs two
    assert budget.tokens == 3 and budget.stressed
    budget.on_failure(C.NOT_FOUND, retryable=False)
    assert budget.tokens == 3
    for _ in range(25):
        budget.on_success()
    assert budget.tokens == pytest.approx(5.5) and not budget.stressed


def test_stress_on_one_dependency_never_touches_another() -> None:
    budgets = RetryBudgets()
    for _ in range(10):
        budgets.get("imap://a@host-a").on_failure(C.NETWORK, retryable=True)
    assert budgets.get("imap://a@host-a").stressed
    assert not budgets.get("imap://b@host-b").stressed


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
        "[stress]\nmax_deferrals = 1\n",
        encoding="utf-8",
    )
    policy = load_policy(path)
    assert policy.name == "gentle" and policy.max_attempts == 8
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
        ("[categories.network]\nlimt = 3\n", "unknown keys"),
        ("jitter = 2\n", "jitter must be"),
        ("[stress]\nbucket = 3\n", "invalid policy setting"),
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
