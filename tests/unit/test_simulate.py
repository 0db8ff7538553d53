"""The policy benchmark's simulation: reproducible streams, real categories, metrics by hand."""

from __future__ import annotations

import itertools
import math
import random
from collections import Counter
from dataclasses import replace

import pytest

from chunksync.errors import categorize
from chunksync.faults import (
    ChunkScript,
    DependencyStream,
    FaultStream,
    Window,
    generate_stream,
    make_exception,
)
from chunksync.models import ChunkStatus, ErrorCategory
from chunksync.retry import DEFAULT_POLICY, Action, RetryPolicy, load_policy
from chunksync.simreport import (
    measure,
    recovery_reduction,
    recovery_time,
    reduction,
    report,
    summarize,
)
from chunksync.simulate import (
    DEFAULT_STRESS,
    NAIVE,
    PolicySpec,
    builtin_policies,
    exponential_policy,
    naive_policy,
    run_all,
    simulate,
)

C = ErrorCategory


def one_dependency(*chunks: ChunkScript, outage: Window | None = None) -> FaultStream:
    return FaultStream(None, (DependencyStream("dep", 1, chunks, outage=outage),))


@pytest.mark.parametrize(
    ("kind", "category", "retry_after"),
    [
        ("timeout", C.TIMEOUT, None),
        ("network", C.NETWORK, None),
        ("refused", C.NETWORK, None),
        ("temporary", C.TEMPORARY, None),
        ("rate_limit:7", C.RATE_LIMIT, 7.0),
        ("auth", C.AUTH, None),
        ("permission", C.PERMISSION, None),
        ("not_found", C.NOT_FOUND, None),
        ("data_conflict", C.DATA_CONFLICT, None),
        ("processing_error", C.PROCESSING_ERROR, None),
        ("unknown", C.UNKNOWN, None),
    ],
)
def test_every_outcome_is_a_real_exception_of_its_category(
    kind: str, category: ErrorCategory, retry_after: float | None
) -> None:
    found = categorize(make_exception(kind))
    assert (found.category, found.retry_after_s) == (category, retry_after)


def test_a_stream_is_reproducible_from_its_seed_and_from_its_json() -> None:
    stream = generate_stream(11, chunks=300)
    assert generate_stream(11, chunks=300) == stream
    assert generate_stream(12, chunks=300) != stream
    assert FaultStream.from_json(stream.to_json()) == stream


def test_the_stream_has_every_ingredient() -> None:
    stream = generate_stream(7, chunks=500)
    for n, dep in enumerate(stream.dependencies):
        assert dep.outage is not None and dep.rate_limit is not None
        assert dep.rate_limit.end_s + 120 <= dep.outage.start_s  # a clean pre-outage window
        calls = [k.partition(":")[0] for c in dep.chunks for k in c.calls]
        assert {"not_found", "permission", "die"} <= set(calls)
        assert sum(c.doomed for c in dep.chunks) >= 5
        poison = [c for c in dep.chunks if c.calls == ("die",)]
        assert len(poison) == (1 if n == 0 else 0)
    full = generate_stream(7)
    noise = {k.partition(":")[0] for d in full.dependencies for c in d.chunks for k in c.calls}
    assert {c.value for c in ErrorCategory} <= noise


def test_a_run_is_deterministic_for_a_seed() -> None:
    stream = generate_stream(3, chunks=200)
    first = run_all(stream, builtin_policies(), seed=3)
    again = run_all(stream, builtin_policies(), seed=3)
    assert [r.attempts for r in first] == [r.attempts for r in again]
    assert report(first) == report(again)


def test_metrics_on_a_hand_checked_stream() -> None:
    # One slot, naive policy (1 s, 6 attempts). t=0: chunk 1 calls into the outage (refused,
    # 0.02 s), t=0.02 chunk 2 too. t=1.02 chunk 1 meets its 404 (0.2 s), t=1.22 chunk 2
    # completes (1 s), then chunk 1 retries its 404 at 2.22, 3.42, 4.62 and 5.82 (all wasted)
    # and is dead, rightly, at 6.02.
    stream = one_dependency(
        ChunkScript(1, ("not_found",)),
        ChunkScript(2, ("ok",), ok_s=1.0),
        outage=Window(0.0, 0.5, "refused"),
    )
    result = simulate(stream, PolicySpec(NAIVE, naive_policy(), stress_aware=False))
    starts = [(a.seq, a.attempt, round(a.started_s, 2), a.action) for a in result.attempts]
    assert starts == [
        (1, 1, 0.0, "retry"),
        (2, 1, 0.02, "retry"),
        (1, 2, 1.02, "retry"),
        (2, 2, 1.22, "completed"),
        (1, 3, 2.22, "retry"),
        (1, 4, 3.42, "retry"),
        (1, 5, 4.62, "retry"),
        (1, 6, 5.82, "dead"),
    ]
    m = measure(result)
    assert (m.attempts, m.failed, m.wasted_permanent) == (8, 7, 4)
    assert (m.into_outage, m.outage_chunks, m.amplification) == (2, 2, 1.0)
    assert (m.completed, m.dead_right, m.dead_wrong, m.left) == (1, 1, 0, 0)
    assert m.finished_s == pytest.approx(6.02)
    assert m.recovery_s == (math.inf,)  # nothing completed before the outage: no level to reach


def test_a_worker_death_is_recovered_after_the_lease_and_a_crash_loop_is_dead() -> None:
    stream = one_dependency(ChunkScript(1, ("die", "ok")), ChunkScript(2, ("die",)))
    result = simulate(stream, PolicySpec(DEFAULT_STRESS, DEFAULT_POLICY))
    # Chunk 1's worker dies at 0.5 s; its lease (30 s) expires and the next precheck (1 s
    # later) puts it back: it completes on attempt 2. Chunk 2 (claimed by the restarted slot at
    # 5.5 s) kills its worker every time: the third recovery in a row is a crash loop.
    recoveries = [(r.seq, r.at_s, r.reason) for r in result.recoveries]
    assert recoveries == [
        (1, 31.5, "stuck"),
        (2, 37.0, "stuck"),
        (2, 68.5, "stuck"),
        (2, 100.0, "crash_loop"),
    ]
    assert [(a.seq, a.attempt, a.action) for a in result.attempts] == [
        (1, 1, "died"),
        (2, 1, "died"),
        (1, 2, "completed"),
        (2, 2, "died"),
        (2, 3, "died"),
    ]
    final = {c.seq: c for c in result.chunks}
    assert final[1].status is ChunkStatus.COMPLETED and final[1].stuck == 1
    assert final[2].status is ChunkStatus.DEAD and final[2].dead_reason == "crash_loop"
    m = measure(result)
    assert (m.stuck_chunks, m.stuck_resolved, m.recoveries) == (2, 2, 4)
    assert (m.dead_right, m.dead_wrong) == (1, 0)


def test_stress_stretches_then_defers_and_a_deferral_gives_the_attempt_back() -> None:
    stream = one_dependency(
        ChunkScript(1, ("timeout", "timeout", "timeout", "ok")),
        ChunkScript(2, ("network", "network", "network", "network", "ok")),
    )
    # time_scale 0: every wait elapses at once, and a chunk back to pending goes to the end of
    # the line, so the one slot takes the two in turns; a shut gate's probe is due at once.
    # Budget 10, stressed below 5; a timeout costs 2, a network failure 1, a success 0.1 back.
    # The gate shuts one failure's worth below the line (the hysteresis); a successful probe
    # reopens it with the tokens at the line.
    result = simulate(stream, PolicySpec(DEFAULT_STRESS, DEFAULT_POLICY), time_scale=0.0)
    assert result.decisions() == [
        (1, 1, "timeout", "retry", 3.0),  # 8 tokens
        (2, 1, "network", "retry", 2.0),  # 7
        (1, 2, "timeout", "retry", 6.0),  # 5
        (2, 2, "network", "retry", 8.0),  # 4: stressed, one more retry at double the delay;
        # the gate shuts (a failure's worth below the line)
        (1, 3, "timeout", "retry", 18.0),  # 2: chunk 1's stressed retry, doubled
        (2, 3, "network", "defer", 30.0),  # the probe fails: deferred, attempt 3 given back
        (1, 4, "", "completed", 0.0),  # the probe succeeds: reopened at the line (5)
        (2, 3, "network", "defer", 60.0),  # 4: stressed, its stressed retry spent: deferred
        (2, 3, "", "completed", 0.0),
    ]
    m = measure(result)
    assert (m.attempts, m.held, m.failed) == (9, 0, 7)


def test_the_chunks_own_failures_never_stress_its_dependency() -> None:
    # Three malformed records (processing_error, retried by the default policy) among healthy
    # chunks: they spend their attempts at their category's pace and go dead; the budget is
    # never charged, no gate opens and no healthy chunk is held or deferred.
    bad = ("processing_error",) * 5
    stream = one_dependency(
        *[ChunkScript(n, bad if n % 10 == 0 else ("ok",)) for n in range(1, 31)]
    )
    result = simulate(stream, PolicySpec(DEFAULT_STRESS, DEFAULT_POLICY), time_scale=0.0)
    actions = Counter(a.action for a in result.attempts)
    assert actions["held"] == 0 and actions["defer"] == 0
    final = {c.seq: c for c in result.chunks}
    for n in (10, 20, 30):
        assert final[n].status is ChunkStatus.DEAD
        assert final[n].dead_reason == "processing_error: out of retries after 5"
    assert sum(c.status is ChunkStatus.COMPLETED for c in final.values()) == 27


def test_recovery_time_is_when_the_window_is_back_at_the_pre_outage_rate() -> None:
    completions = [float(t) for t in range(400) if not 200 <= t < 260]
    # 1 completion/s before; from t = 257 s, [t, t + 30 s) holds 27 = 90% of 30 completions.
    assert recovery_time(completions, 200.0, 250.0) == 7.0
    assert recovery_time([float(t) for t in range(210)], 200.0, 205.0) == math.inf


def test_reduction_conventions() -> None:
    assert reduction(100.0, 30.0) == pytest.approx(0.7)
    assert reduction(math.inf, 72.0) == 1.0
    assert reduction(math.inf, math.inf) == 0.0
    assert reduction(0.0, 0.0) == 0.0
    assert reduction(0.0, 5.0) == -math.inf


def test_recovery_is_compared_like_for_like() -> None:
    inf = math.inf
    # Outages both recovered from are compared; one only ours recovered from is counted apart.
    value, compared, only_ours = recovery_reduction((inf, 10.0, 20.0), (72.0, 3.0, 6.0))
    assert value == pytest.approx(0.7) and (compared, only_ours) == (2, 1)
    assert recovery_reduction((inf, 0.0, 0.0), (0.0, 1.0, 1.0)) == (-inf, 2, 1)
    assert recovery_reduction((10.0,), (inf,))[0] == -inf  # naive recovered, ours did not
    value, compared, only_ours = recovery_reduction((inf, inf), (5.0, inf))
    assert math.isnan(value) and (compared, only_ours) == (0, 1)  # nothing to compare


def test_a_shut_gate_sends_one_probe_per_interval_into_the_outage() -> None:
    # One slot, a long outage: the first failures stress the budget and shut the gate; then the
    # claim takes only the gate's probes, the first 0.5 s after it shut, each later one twice as
    # late up to probe_interval_s (5 s here, to show the doubling; the default is 1.5 s);
    # every chunk completes once the outage ends.
    chunks = tuple(ChunkScript(n, ("ok",), ok_s=1.0) for n in range(1, 21))
    stream = one_dependency(*chunks, outage=Window(0.0, 120.0, "refused"))
    policy = replace(DEFAULT_POLICY, stress=replace(DEFAULT_POLICY.stress, probe_interval_s=5.0))
    result = simulate(stream, PolicySpec(DEFAULT_STRESS, policy))
    m = measure(result)
    assert m.attempts == len(result.attempts) - m.held
    assert m.into_outage == sum(1 for a in result.calls() if a.into_outage)
    assert (m.completed, m.dead_wrong, m.left) == (20, 0, 0)
    probes = [a.started_s for a in result.calls() if a.into_outage][7:]  # after 7 failures
    gaps = [round(b - a, 6) for a, b in itertools.pairwise(probes)]
    assert gaps[:4] == [0.5, 1.0, 2.0, 4.0] and set(gaps[4:]) == {5.0}
    assert m.into_outage == 7 + len(probes)


def test_the_report_ends_with_name_value_lines() -> None:
    # The closing lines themselves, and that they are the documented ones: test_simreport.
    stream = generate_stream(5, chunks=150)
    lines = report(run_all(stream, builtin_policies(), seed=5))
    closing = [line for line in lines if "=" in line and " " not in line]
    assert lines[-len(closing) :] == closing and len(closing) == 8
    assert closing[-1].startswith("backlog_recovery_reduction_vs_naive=")
    for line in closing:
        float(line.split("=")[1])


def test_full_jitter_draws_from_zero_to_the_schedule() -> None:
    policy = exponential_policy()
    rng = random.Random(1)
    delays = [policy.backoff(C.NETWORK, 4, rng) for _ in range(500)]
    assert 0.0 <= min(delays) < 1.0 and 7.0 < max(delays) <= 8.0
    assert policy.backoff(C.NETWORK, 4, None) == 8.0
    assert policy.decide(C.NOT_FOUND, 1).action is Action.RETRY  # no categories


def test_a_policy_file_can_ask_for_full_jitter(tmp_path: pytest.TempPathFactory) -> None:
    path = tmp_path / "mine.toml"  # type: ignore[operator]
    path.write_text("full_jitter = true\n", encoding="utf-8")
    assert load_policy(path).full_jitter
    assert not RetryPolicy().full_jitter


def test_summary_compares_the_default_with_naive() -> None:
    stream = generate_stream(5, chunks=150)
    metrics = [measure(r) for r in run_all(stream, builtin_policies(), seed=5)]
    by = {m.label: m for m in metrics}
    summary = summarize(metrics)
    expected = 1 - by[DEFAULT_STRESS].failed / by[NAIVE].failed
    assert summary.failed_attempts_reduction_vs_naive == pytest.approx(expected)
    assert summary.wrong_deaths == by[DEFAULT_STRESS].dead_wrong
