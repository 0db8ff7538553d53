"""The policy benchmark's outage figures and closing lines, checked by hand on tiny streams."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from chunksync.faults import ChunkScript, DependencyStream, FaultStream, Window, generate_stream
from chunksync.retry import DEFAULT_POLICY
from chunksync.simoutage import (
    OutageFigures,
    backlog,
    backlog_recovery,
    first_success_after,
    median,
    outage_figures,
    reduction,
)
from chunksync.simreport import Metrics, measure, poison_lines, report, summarize
from chunksync.simulate import (
    DEFAULT_STRESS,
    EXPONENTIAL,
    NAIVE,
    PolicySpec,
    SimResult,
    builtin_policies,
    malformed_stream,
    naive_policy,
    run_all,
    simulate,
)

DOCS = Path(__file__).parents[2] / "docs" / "policy-benchmark.md"
CLOSING = [
    "failed_attempts_reduction_vs_naive",
    "stuck_auto_resolved",
    "wrong_deaths",
    "calls_into_outage_vs_naive",
    "poison_slowdown",
    "first_success_after_outage_s",
    "recovery_time_reduction_vs_naive",
    "backlog_recovery_reduction_vs_exponential",
    "backlog_recovery_reduction_vs_naive",
]
NAIVE_SPEC = PolicySpec(NAIVE, naive_policy(), stress_aware=False)


def run(*chunks: ChunkScript, outage: Window | None, spec: PolicySpec = NAIVE_SPEC) -> SimResult:
    stream = FaultStream(None, (DependencyStream("dep", 1, chunks, outage=outage),))
    return simulate(stream, spec)


def test_first_success_and_backlog_after_a_short_outage() -> None:
    # One slot, naive (1 s, 6 attempts), refused calls take 0.02 s. Chunks 1 and 2 fail at
    # 0, 0.02, 1.02, 1.04, 2.04 and 2.06, all inside the outage [0, 2.5). Chunk 1 calls again
    # at 3.06 and completes at 4.06; chunk 2, due at 3.08, waits for the slot: 4.06 to 5.06.
    outage = Window(0.0, 2.5, "refused")
    result = run(ChunkScript(1, ("ok",), 1.0), ChunkScript(2, ("ok",), 1.0), outage=outage)
    assert first_success_after(result, "dep", outage) == pytest.approx(1.56)
    assert backlog(result, "dep") == {1, 2}
    assert backlog_recovery(result, "dep", outage) == pytest.approx(2.56)
    (figures,) = outage_figures(result)
    assert figures == OutageFigures(
        "dep", figures.first_success_s, 2, figures.backlog_recovery_s, 6
    )


def test_a_chunk_that_dies_rightly_is_resolved_at_its_death() -> None:
    # The hand-checked stream of test_simulate: chunk 1 fails into the outage [0, 0.5) and then
    # meets its 404 until it is dead, rightly, at 6.02; chunk 2 fails into the outage too and
    # completes on its second attempt, 1.22 to 2.22.
    outage = Window(0.0, 0.5, "refused")
    result = run(ChunkScript(1, ("not_found",)), ChunkScript(2, ("ok",), 1.0), outage=outage)
    assert first_success_after(result, "dep", outage) == pytest.approx(1.72)
    assert backlog_recovery(result, "dep", outage) == pytest.approx(5.52)


def test_a_wrong_death_in_the_backlog_means_it_never_recovers() -> None:
    # Naive spends its 6 attempts inside a 10 s outage: dead at 5.12, though it would complete.
    outage = Window(0.0, 10.0, "refused")
    result = run(ChunkScript(1, ("ok",), 1.0), outage=outage)
    assert [a.action for a in result.attempts] == ["retry"] * 5 + ["dead"]
    assert first_success_after(result, "dep", outage) == math.inf
    assert backlog_recovery(result, "dep", outage) == math.inf
    assert measure(result).outages[0].calls == 6


def test_a_backlog_resolved_before_the_outage_ends_takes_no_time() -> None:
    outage = Window(0.0, 30.0, "refused")
    result = run(ChunkScript(1, ("ok",), 1.0), ChunkScript(2, ("ok",), 1.0), outage=None)
    assert backlog(result, "dep") == set()
    assert backlog_recovery(result, "dep", outage) == 0.0


def test_medians_count_never_as_the_longest_wait() -> None:
    inf = math.inf
    assert median([3.0, 1.0, inf]) == 3.0
    assert median([inf, 1.0, inf]) == inf
    assert math.isnan(median([]))
    assert reduction(inf, 5.0) == 1.0  # the baseline's backlog never recovered, ours did
    assert reduction(inf, inf) == 0.0
    assert reduction(20.0, 5.0) == 0.75
    assert reduction(5.0, inf) == -inf
    assert math.isnan(reduction(math.nan, 1.0))


def metrics(
    label: str, seed: int, outages: list[tuple[float, float]], into: int, wrong: int = 0
) -> Metrics:
    """Metrics of one run with the given (first success, backlog recovery) per outage."""
    return Metrics(
        label=label,
        attempts=100,
        failed=10,
        wasted_permanent=0,
        into_outage=into,
        outage_chunks=1,
        completed=90,
        dead_right=0,
        dead_wrong=wrong,
        left=0,
        recovery_s=tuple(1.0 for _ in outages),
        stuck_chunks=0,
        stuck_resolved=0,
        recoveries=0,
        finished_s=100.0,
        outages=tuple(OutageFigures("dep", f, 5, b, into) for f, b in outages),
        seed=seed,
    )


def test_the_summary_pools_the_outages_of_every_seed() -> None:
    inf = math.inf
    runs = [
        metrics(NAIVE, 3, [(0.5, inf), (0.5, 10.0)], into=1000, wrong=40),
        metrics(EXPONENTIAL, 3, [(0.6, 20.0), (0.6, 30.0)], into=900, wrong=30),
        metrics(DEFAULT_STRESS, 3, [(1.0, 4.0), (3.0, 6.0)], into=20, wrong=1),
        metrics(NAIVE, 7, [(0.5, inf)], into=1000),
        metrics(EXPONENTIAL, 7, [(0.6, 10.0)], into=900),
        metrics(DEFAULT_STRESS, 7, [(2.0, 5.0)], into=30, wrong=2),
    ]
    summary = summarize(runs, poison_slowdown=1.25)
    assert summary.outages == 3
    assert summary.first_success_after_outage_s == 2.0  # median of 1, 3, 2
    assert summary.backlog_median_s == ((NAIVE, inf), (EXPONENTIAL, 20.0), (DEFAULT_STRESS, 5.0))
    assert summary.backlog_recovery_reduction_vs_naive == 1.0  # naive never: all of it gone
    assert summary.backlog_recovery_reduction_vs_exponential == 0.75
    assert summary.calls_into_outage == (50, 2000)
    assert summary.calls_into_outage_vs_naive == 0.025
    assert summary.wrong_deaths == 3 and summary.wrong_deaths_per_seed == ((3, 1), (7, 2))
    assert summary.failed_attempts_reduction_vs_naive == 0.0
    lines = summary.lines()
    assert [line.split("=")[0] for line in lines] == CLOSING
    assert "poison_slowdown=1.250" in lines and lines[-1].endswith("=1.000")
    verdicts = summary.verdicts()
    assert any("(seed 3: 1, seed 7: 2) (target 0): MISSED" in v for v in verdicts)
    assert any("1.250 (target <= 1.2): MISSED" in v for v in verdicts)
    assert any("2.00 s (target <= 2 s): met" in v for v in verdicts)


def test_the_malformed_records_scenario_is_the_same_stream_but_for_them() -> None:
    sick, healthy = (
        malformed_stream(5, chunks=300),
        malformed_stream(5, chunks=300, malformed=False),
    )
    assert malformed_stream(5, chunks=300) == sick
    bad = [c for c in sick.dependencies[0].chunks if c.doomed]
    assert len(bad) == 3 and all(c.calls == ("processing_error",) for c in bad)
    assert not any(c.doomed for c in healthy.dependencies[0].chunks)
    assert [c.ok_s for c in sick.dependencies[0].chunks] == [
        c.ok_s for c in healthy.dependencies[0].chunks
    ]
    d = sick.dependencies[0]
    assert d.outage is None and d.rate_limit is None


def test_poison_slowdown_is_the_ratio_of_drain_times() -> None:
    # One slot, the default policy without jitter: chunk 1 completes at 1.0; chunk 2, malformed,
    # fails 0.5 s calls at 1.0, 2.5, 5.0, 9.5 and 18.0 (retries after 1, 2, 4, 8 s) and is dead
    # at 18.5; healthy, it completes at 2.0.
    spec = PolicySpec(DEFAULT_STRESS, DEFAULT_POLICY)
    sick = run(
        ChunkScript(1, ("ok",), 1.0), ChunkScript(2, ("processing_error",)), outage=None, spec=spec
    )
    healthy = run(
        ChunkScript(1, ("ok",), 1.0), ChunkScript(2, ("ok",), 1.0), outage=None, spec=spec
    )
    assert (sick.finished_s, healthy.finished_s) == (18.5, 2.0)
    lines, slowdown = poison_lines([(sick, healthy)])
    assert slowdown == 9.25
    assert lines[-1] == "  default: drained in 18 s with them, 2 s without: x9.250"


def test_the_report_ends_with_the_documented_name_value_lines() -> None:
    sick, healthy = (
        malformed_stream(5, chunks=100),
        malformed_stream(5, chunks=100, malformed=False),
    )
    poison = [(simulate(sick, s), simulate(healthy, s)) for s in builtin_policies()]
    runs = [
        run_all(generate_stream(seed, chunks=150), builtin_policies(), seed=seed) for seed in (5, 6)
    ]
    lines = report(runs[0], other_seeds=runs[1:], poison=poison)
    names = [line.split("=")[0] for line in lines[-len(CLOSING) :]]
    assert names == CLOSING
    for line in lines[-len(CLOSING) :]:
        float(line.split("=")[1])
    documented = DOCS.read_text(encoding="utf-8")
    assert all(f"`{name}`" in documented for name in CLOSING)
    # One seed and no malformed-records scenario (`chunksync bench-policy`): the same lines less
    # poison_slowdown, which was not measured.
    single = report(runs[0])
    assert [line.split("=")[0] for line in single[-len(CLOSING) + 1 :]] == [
        n for n in CLOSING if n != "poison_slowdown"
    ]
