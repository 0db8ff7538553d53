"""The pure rules of an attempt (chunksync.runtime.attempt), driven directly: plain data in,
the `FinishResult` and the metrics row out. No database, no threads, no clock."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chunksync.deps.budget import RetryBudget
from chunksync.exceptions import Abort, RetryLater
from chunksync.models import Attempt, Chunk, ChunkStatus, ErrorCategory, Outcome
from chunksync.results import FinishResult
from chunksync.retry import DEFAULT_POLICY, DEPENDENCY_FAULTS, RetryPolicy
from chunksync.runtime import attempt
from chunksync.runtime.attempt import Failure

C = ErrorCategory
RETRYABLE = [c for c in ErrorCategory if DEFAULT_POLICY.is_retryable(c)]
NEVER_RETRIED = [c for c in ErrorCategory if not DEFAULT_POLICY.is_retryable(c)]
WORKER = "host:1:abcd"


def chunk(**changes: object) -> Chunk:
    base = Chunk(
        id="c1",
        queue_id="q1",
        tenant="acme",
        seq=1,
        payload={"n": 1},
        status=ChunkStatus.PROCESSING,
        priority=0,
        attempts=1,
        max_attempts=5,
        run_after=0.0,
        lease_token="t1",
        lease_expires_at=None,
        worker_id=WORKER,
        last_category=None,
        last_error=None,
        dead_reason=None,
        items_processed=0,
        checkpoint=None,
        crash_count=0,
        stress_retries=0,
        deferrals=0,
        created_at=0.0,
        updated_at=0.0,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def failure(category: ErrorCategory, retry_after_s: float | None = None) -> Failure:
    return Failure(category, f"test:{category.value}", retry_after_s, f"Boom: {category.value}")


def stressed_budget(policy: RetryPolicy = DEFAULT_POLICY) -> RetryBudget:
    budget = RetryBudget(policy.stress)
    budget.charge(policy.stress.capacity)  # every token spent: well below the stress line
    assert budget.stressed
    return budget


# --- success and measurement -------------------------------------------------------------------


def test_a_success_completes_the_chunk_and_refunds_the_budget() -> None:
    budget = RetryBudget(DEFAULT_POLICY.stress)
    budget.charge(1.0)
    result = attempt.completed(budget, 7)
    assert result == FinishResult(ChunkStatus.COMPLETED, Outcome.COMPLETED, items=7)
    assert budget.tokens == pytest.approx(9.1)


def test_a_success_while_stressed_reopens_the_gate() -> None:
    budget = stressed_budget()
    attempt.completed(budget, 1)
    assert not budget.stressed and budget.tokens == pytest.approx(5.0)  # at the stress line


def test_the_measured_row_of_an_attempt() -> None:
    row = attempt.measured(
        chunk(attempts=2),
        WORKER,
        size=10,
        items=8,
        elapsed_s=2.0,
        median_items_per_s=2.0,
        rss_bytes=123,
    )
    assert row == Attempt(
        chunk_id="c1",
        queue_id="q1",
        tenant="acme",
        worker_id=WORKER,
        attempt=2,
        started_at=0.0,
        finished_at=2.0,
        outcome=Outcome.COMPLETED,
        chunk_size=10,
        items_processed=8,
        items_per_s=4.0,
        efficiency=2.0,
        rss_bytes=123,
    )


def test_unreported_items_count_as_the_chunk_size() -> None:
    row = attempt.measured(
        chunk(), WORKER, size=50, items=-1, elapsed_s=0.5, median_items_per_s=None, rss_bytes=None
    )
    assert (row.items_processed, row.items_per_s, row.efficiency) == (50, 100.0, None)


def test_an_instant_attempt_has_a_finite_rate() -> None:
    row = attempt.measured(
        chunk(), WORKER, size=3, items=3, elapsed_s=0.0, median_items_per_s=0.0, rss_bytes=None
    )
    assert row.finished_at == 1e-9 and row.items_per_s == pytest.approx(3e9)
    assert row.efficiency is None  # no median yet: no efficiency, not a division by zero


@pytest.mark.parametrize(
    ("returned", "reported", "items"),
    [
        (12, 0, 12),  # a returned count wins
        (0, 5, 0),
        (None, 5, 5),  # else what the handler reported through its context
        (None, 0, -1),  # else the chunk size stands in
        (True, 0, -1),  # a bool is no count
        (-3, 4, 4),  # nor is a negative number
        ("12", 0, -1),
    ],
)
def test_items_counting(returned: object, reported: int, items: int) -> None:
    assert attempt.counted(returned, reported) == items


@given(st.integers(min_value=-1, max_value=10**6), st.integers(min_value=0, max_value=10**6))
def test_items_are_the_count_or_else_the_chunk_size(items: int, size: int) -> None:
    row = attempt.measured(
        chunk(),
        WORKER,
        size=size,
        items=items,
        elapsed_s=1.0,
        median_items_per_s=None,
        rss_bytes=None,
    )
    assert row.items_processed == (size if items < 0 else items)
    assert row.items_per_s == row.items_processed


# --- failures --------------------------------------------------------------------------------


@pytest.mark.parametrize("category", RETRYABLE)
def test_each_retryable_category_is_retried_after_the_policy_delay(category: ErrorCategory) -> None:
    budget = RetryBudget(DEFAULT_POLICY.stress)
    result, policy_delay = attempt.decide(
        chunk(), failure(category), DEFAULT_POLICY, budget, items=3
    )
    expected = DEFAULT_POLICY.backoff(category, 1)
    assert expected > 0 and policy_delay == expected
    assert result == FinishResult(
        ChunkStatus.PENDING,
        Outcome.RETRIED,
        delay_s=expected,
        category=category,
        message=f"Boom: {category.value}",
        items=3,
    )
    # Only the dependency's own faults are charged to it; the chunk's own trouble is not.
    cost = (2.0 if category is C.TIMEOUT else 1.0) if category in DEPENDENCY_FAULTS else 0.0
    assert budget.tokens == pytest.approx(10.0 - cost)


def test_a_retry_after_is_a_floor_under_the_policy_delay() -> None:
    budget = RetryBudget(DEFAULT_POLICY.stress)
    result, policy_delay = attempt.decide(
        chunk(), failure(C.RATE_LIMIT, retry_after_s=7.0), DEFAULT_POLICY, budget
    )
    assert (result.outcome, policy_delay, result.delay_s) == (Outcome.RETRIED, 7.0, 7.0)


@pytest.mark.parametrize("category", NEVER_RETRIED)
def test_a_category_never_retried_is_dead_with_its_reason(category: ErrorCategory) -> None:
    budget = RetryBudget(DEFAULT_POLICY.stress)
    result, policy_delay = attempt.decide(chunk(), failure(category), DEFAULT_POLICY, budget)
    assert (result.status, result.outcome, policy_delay) == (ChunkStatus.DEAD, Outcome.DEAD, 0.0)
    assert result.dead_reason == f"{category.value} is never retried"
    assert (result.category, result.message) == (category, f"Boom: {category.value}")
    assert budget.tokens == 10.0  # the dependency answered: no stress


def test_out_of_attempts_is_dead() -> None:
    budget = RetryBudget(DEFAULT_POLICY.stress)
    result, _ = attempt.decide(
        chunk(attempts=5, max_attempts=5), failure(C.UNKNOWN), DEFAULT_POLICY, budget
    )
    assert (result.status, result.dead_reason) == (
        ChunkStatus.DEAD,
        "unknown: out of retries after 5",
    )


def test_a_category_limit_below_max_attempts_is_dead_too() -> None:
    budget = RetryBudget(DEFAULT_POLICY.stress)
    result, _ = attempt.decide(chunk(attempts=3), failure(C.AUTH), DEFAULT_POLICY, budget)
    assert (result.status, result.dead_reason) == (ChunkStatus.DEAD, "auth: out of retries after 3")


def test_an_abort_is_dead_with_its_reason_whatever_the_policy() -> None:
    budget = RetryBudget(DEFAULT_POLICY.stress)
    found = attempt.analyze(Abort("mailbox deleted, password=hunter2"))
    assert found.aborted == "aborted: mailbox deleted, password=***"
    result, policy_delay = attempt.decide(chunk(attempts=1), found, DEFAULT_POLICY, budget)
    assert (result.status, result.outcome, policy_delay) == (ChunkStatus.DEAD, Outcome.DEAD, 0.0)
    assert result.dead_reason == "aborted: mailbox deleted, password=***"
    assert result.message is not None and "hunter2" not in result.message
    assert budget.tokens == 10.0  # the handler gave up, the dependency did not fail


def test_analyze_categorizes_and_words_the_failure() -> None:
    found = attempt.analyze(RetryLater("slow down", delay_s=12.0))
    assert (found.category, found.retry_after_s, found.aborted) == (C.RATE_LIMIT, 12.0, None)
    assert found.message == "RetryLater: slow down"
    long = attempt.analyze(ValueError("x" * 5000))
    assert len(long.message) == attempt.MESSAGE_MAX_CHARS
    assert (long.category, long.rule) == (C.PROCESSING_ERROR, "exception:ValueError")


# --- stress: the gate, deferrals, probes ---------------------------------------------------------


def test_a_held_chunk_goes_back_to_pending_with_its_attempt_given_back() -> None:
    held = chunk(attempts=3, items_processed=40)
    result, row = attempt.held(held, WORKER, 5.0, time_scale=0.5)
    assert result == FinishResult(
        ChunkStatus.PENDING, Outcome.HELD, delay_s=2.5, attempts_delta=-1, items=40
    )
    assert (row.outcome, row.attempt, row.retry_delay_s, row.processing_s) == (
        Outcome.HELD,
        3,
        5.0,  # the policy's seconds, before time_scale
        0.0,
    )
    assert row.category is None and row.message == attempt.HELD_MESSAGE
    assert attempt.held_result(5.0, items=40, time_scale=0.5) == result


def test_the_first_failure_under_stress_is_retried_later_then_deferred() -> None:
    budget = stressed_budget()
    result, policy_delay = attempt.decide(chunk(), failure(C.NETWORK), DEFAULT_POLICY, budget)
    assert (result.outcome, result.stress_delta) == (Outcome.RETRIED, 1)
    assert policy_delay == DEFAULT_POLICY.backoff(C.NETWORK, 1) * 2.0  # the delay stretched
    result, policy_delay = attempt.decide(
        chunk(stress_retries=1, deferrals=1), failure(C.NETWORK), DEFAULT_POLICY, budget
    )
    assert result == FinishResult(
        ChunkStatus.PENDING,
        Outcome.DEFERRED,
        delay_s=60.0,  # the second deferral: 30 s doubled
        attempts_delta=-1,
        deferrals_delta=1,
        category=C.NETWORK,
        message="Boom: network",
    )
    assert policy_delay == 60.0


def test_a_failed_probe_is_deferred_even_on_its_last_attempt() -> None:
    budget = stressed_budget()
    last = chunk(attempts=5, max_attempts=5)
    result, policy_delay = attempt.decide(
        last, failure(C.TIMEOUT), DEFAULT_POLICY, budget, probe=True
    )
    assert (result.outcome, result.attempts_delta, result.deferrals_delta) == (
        Outcome.DEFERRED,
        -1,
        1,
    )
    assert policy_delay == 30.0
    used_up = chunk(attempts=5, max_attempts=5, deferrals=5)
    result, _ = attempt.decide(used_up, failure(C.TIMEOUT), DEFAULT_POLICY, budget, probe=True)
    assert result.status is ChunkStatus.DEAD


def test_time_scale_scales_the_wait_not_the_recorded_delay() -> None:
    budget = RetryBudget(DEFAULT_POLICY.stress)
    for scale, waits in ((0.001, 0.002), (0.0, 0.0), (2.0, 4.0)):
        result, policy_delay = attempt.decide(
            chunk(), failure(C.NETWORK), DEFAULT_POLICY, budget, time_scale=scale
        )
        assert (result.delay_s, policy_delay) == (pytest.approx(waits), 2.0)


# --- the rows of failures ------------------------------------------------------------------------


def test_a_failed_row_says_what_was_decided_and_why() -> None:
    measured = attempt.measured(
        chunk(), WORKER, size=4, items=-1, elapsed_s=2.0, median_items_per_s=None, rss_bytes=9
    )
    budget = RetryBudget(DEFAULT_POLICY.stress)
    found = failure(C.TIMEOUT)
    result, delay = attempt.decide(chunk(), found, DEFAULT_POLICY, budget, time_scale=0.5)
    row = attempt.failed_row(measured, result, found, delay)
    assert row == replace(
        measured,
        outcome=Outcome.RETRIED,
        category=C.TIMEOUT,
        rule="test:timeout",
        message="Boom: timeout",
        retry_delay_s=3.0,
    )
    dead, _ = attempt.decide(chunk(), failure(C.NOT_FOUND), DEFAULT_POLICY, budget)
    assert attempt.failed_row(measured, dead, failure(C.NOT_FOUND), 0.0).retry_delay_s is None


def test_a_chunk_no_handler_can_run_is_dead_with_the_reason() -> None:
    result, row = attempt.setup_failure(chunk(attempts=2), WORKER, "no source for kind 'x'")
    assert (result.status, result.category, result.dead_reason) == (
        ChunkStatus.DEAD,
        C.PROCESSING_ERROR,
        "no source for kind 'x'",
    )
    assert (row.outcome, row.rule, row.attempt, row.message) == (
        Outcome.DEAD,
        "setup",
        2,
        "no source for kind 'x'",
    )


# --- the whole space ------------------------------------------------------------------------------


@given(
    category=st.sampled_from(list(ErrorCategory)),
    attempts=st.integers(min_value=1, max_value=12),
    max_attempts=st.integers(min_value=1, max_value=12),
    deferrals=st.integers(min_value=0, max_value=5),
    time_scale=st.sampled_from([0.0, 1e-6, 0.5, 1.0, 3.0]),
)
def test_dead_exactly_when_the_policy_allows_no_more(
    category: ErrorCategory, attempts: int, max_attempts: int, deferrals: int, time_scale: float
) -> None:
    budget = RetryBudget(DEFAULT_POLICY.stress)  # not stressed after one failure
    counts = chunk(attempts=attempts, max_attempts=max_attempts, deferrals=deferrals)
    result, policy_delay = attempt.decide(
        counts, failure(category), DEFAULT_POLICY, budget, time_scale=time_scale
    )
    rule = DEFAULT_POLICY.rule(category)
    # A rate limit with attempts left is deferred (attempt not spent) while deferrals remain.
    deferred = (
        category is C.RATE_LIMIT
        and attempts < max_attempts
        and deferrals < DEFAULT_POLICY.stress.max_deferrals
    )
    no_more = not rule.allows(attempts, max_attempts) and not deferred
    assert (result.status is ChunkStatus.DEAD) is no_more
    assert result.category is category and result.message == f"Boom: {category.value}"
    if no_more:
        assert (result.outcome, result.delay_s, policy_delay) == (Outcome.DEAD, 0.0, 0.0)
        assert result.dead_reason and result.dead_reason.startswith(category.value)
        assert result.attempts_delta == 0
    else:
        assert result.outcome is (
            Outcome.DEFERRED
            if deferred and not rule.allows(attempts, max_attempts)
            else Outcome.RETRIED
        )
        assert policy_delay > 0 and math.isclose(result.delay_s, policy_delay * time_scale)
        assert result.attempts_delta == (-1 if result.outcome is Outcome.DEFERRED else 0)


def test_a_median_due_before_any_rate_is_added_is_skipped_not_an_error() -> None:
    # Slots count an attempt (median) before they add its rate: with many slots, the sixth
    # count can come while the window is still empty. The median waits for the next refresh.
    from chunksync.runtime.measure import MEDIAN_MIN_SAMPLES, Efficiency

    efficiency = Efficiency()
    for _ in range(MEDIAN_MIN_SAMPLES + 1):
        assert efficiency.median("q") is None
    efficiency.add("q", 4.0)
    assert efficiency.median("q") is None  # not due again until MEDIAN_REFRESH more attempts
