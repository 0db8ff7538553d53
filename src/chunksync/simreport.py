"""The policy benchmark's metrics and report, computed from simulation results.

Definitions (also printed with every report, and in docs/policy-benchmark.md):

attempts           calls made into a dependency (a deferred chunk's re-run included); a chunk the
                   gate held is not an attempt: no call was made
held               claims the gate refused while the dependency was stressed: the chunk went back
                   to pending, attempt given back, no call; neither an attempt nor a failure
failed attempts    attempts that did not complete the chunk (a worker death included)
wasted (perm.)     attempts made by a chunk after it had already met its permanent failure once:
                   certain to fail (the first one is not counted: no policy can know before)
calls into outage  attempts (real calls, holds left out) started inside an outage window;
                   amplification = those calls per chunk that made any
completed / dead   chunks in each end state; a death is right when the chunk could never have
                   completed (its stream ends in a permanent failure), wrong otherwise
first success      per outage: from the outage's end until a call into the dependency, started
                   after it, completes a chunk (at the call's end); "never" if none does
backlog            per outage: the chunks that had a failed or held attempt started inside it
backlog recovery   per outage: from the outage's end until every chunk of its backlog is
                   resolved: completed, or dead when it could never have completed; "never" if
                   one died wrongly or is left unfinished (0 if all were resolved by the end)
backlog reduction  1 - median(default) / median(baseline), medians over the outages with
                   "never" counted as the longest wait (a median of "never" is "never"); a
                   baseline "never" against a default that recovers: 1.0; both "never": 0.0
throughput back    (the old recovery time) per outage: from the outage's end until the first
                   moment t from which the dependency completes, within [t, t + 30 s), at least
                   90% of the chunks per second it completed in the 120 s before the outage;
                   "never" if that does not happen before its last completion
throughput reduct. compared outage by outage, like for like: 1 - sum(policy) / sum(naive) over
                   the outages both recovered from. An outage only the policy recovered from is
                   counted apart; one only naive recovered from makes the reduction -inf; with
                   no outage both recovered from, it is not measurable (nan)
stuck resolved     of the chunks whose worker died under them, the share that ended completed or
                   rightly dead without an operator
poison slowdown    the malformed-records scenario: one healthy dependency, 1% of its chunks
                   failing processing_error on every attempt; drain time (until every chunk is
                   completed or dead) with them / with those chunks healthy, same stream
Over several seeds, sums are pooled and medians are taken over every seed's outages.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass

from chunksync.models import ChunkStatus
from chunksync.simoutage import OutageFigures, median, outage_figures, reduction, seconds
from chunksync.simulate import DEFAULT_STRESS, EXPONENTIAL, NAIVE, SimResult

__all__ = [
    "Metrics",
    "Summary",
    "measure",
    "recovery_reduction",
    "recovery_time",
    "reduction",
    "report",
    "summarize",
    "table",
]

THROUGHPUT_WINDOW_SECONDS = 30.0
PRE_OUTAGE_SECONDS = 120.0
RECOVERED_SHARE = 0.9
RECOVERY_STEP_SECONDS = 1.0

TARGET_FIRST_SUCCESS_S = 2.0
TARGET_BACKLOG_REDUCTION = 0.70
TARGET_CALLS_INTO_OUTAGE = 0.05
TARGET_POISON_SLOWDOWN = 1.2
TARGET_FAILED_REDUCTION = 0.60
TARGET_RECOVERY_REDUCTION = 0.70
TARGET_WRONG_DEATHS = 0
TARGET_STUCK_RESOLVED = 1.0

DEFINITIONS = (__doc__ or "").split("docs/policy-benchmark.md):", 1)[-1]


@dataclass(frozen=True, slots=True)
class Metrics:
    label: str
    attempts: int
    failed: int
    wasted_permanent: int
    into_outage: int
    outage_chunks: int
    completed: int
    dead_right: int
    dead_wrong: int
    left: int
    recovery_s: tuple[float, ...]  # per dependency with an outage; math.inf: never
    stuck_chunks: int
    stuck_resolved: int
    recoveries: int
    finished_s: float
    held: int = 0  # claims the gate refused (no call)
    outages: tuple[OutageFigures, ...] = ()  # per dependency with an outage
    seed: int | None = None  # the stream's

    @property
    def amplification(self) -> float:
        return self.into_outage / self.outage_chunks if self.outage_chunks else 0.0

    @property
    def recovery_total_s(self) -> float:
        return sum(self.recovery_s)

    @property
    def stuck_resolved_share(self) -> float:
        return self.stuck_resolved / self.stuck_chunks if self.stuck_chunks else 1.0


def recovery_time(completions: Sequence[float], outage_start: float, outage_end: float) -> float:
    """Seconds from `outage_end` until throughput is back (see the definitions); math.inf if
    never. `completions` are the sorted times at which the dependency completed a chunk."""
    before = bisect.bisect_left(completions, outage_start) - bisect.bisect_left(
        completions, outage_start - PRE_OUTAGE_SECONDS
    )
    level = before / PRE_OUTAGE_SECONDS
    if level <= 0 or not completions:
        return math.inf
    needed = RECOVERED_SHARE * level * THROUGHPUT_WINDOW_SECONDS
    t = outage_end
    while t <= completions[-1]:
        got = bisect.bisect_left(completions, t + THROUGHPUT_WINDOW_SECONDS) - bisect.bisect_left(
            completions, t
        )
        if got >= needed:
            return t - outage_end
        t += RECOVERY_STEP_SECONDS
    return math.inf


def measure(result: SimResult) -> Metrics:
    attempts = result.calls()  # real calls only: a hold is no attempt at the dependency
    hit = {(a.dependency, a.seq) for a in attempts if a.into_outage}
    recovery: list[float] = []
    for dep in result.stream.dependencies:
        if dep.outage is None:
            continue
        done = sorted(
            a.finished_s for a in attempts if a.dependency == dep.name and a.action == "completed"
        )
        recovery.append(recovery_time(done, dep.outage.start_s, dep.outage.end_s))
    stuck = [c for c in result.chunks if c.stuck]
    dead = [c for c in result.chunks if c.status is ChunkStatus.DEAD]
    return Metrics(
        label=result.label,
        attempts=len(attempts),
        failed=sum(1 for a in attempts if a.action != "completed"),
        wasted_permanent=sum(1 for a in attempts if a.wasted_on_permanent),
        into_outage=sum(1 for a in attempts if a.into_outage),
        outage_chunks=len(hit),
        completed=sum(1 for c in result.chunks if c.status is ChunkStatus.COMPLETED),
        dead_right=sum(1 for c in dead if c.doomed),
        dead_wrong=sum(1 for c in dead if not c.doomed),
        left=sum(1 for c in result.chunks if not c.status.terminal),
        recovery_s=tuple(recovery),
        stuck_chunks=len(stuck),
        stuck_resolved=sum(
            1
            for c in stuck
            if c.status is ChunkStatus.COMPLETED or (c.status is ChunkStatus.DEAD and c.doomed)
        ),
        recoveries=len(result.recoveries),
        finished_s=result.finished_s,
        held=len(result.attempts) - len(attempts),
        outages=outage_figures(result),
        seed=result.stream.seed,
    )


def recovery_reduction(naive: Sequence[float], ours: Sequence[float]) -> tuple[float, int, int]:
    """Like for like, per outage (see the definitions): (reduction, outages compared, outages
    only `ours` recovered from). -inf when naive recovered from one `ours` did not; nan when no
    outage was recovered from by both."""
    both = [
        (n, o) for n, o in zip(naive, ours, strict=True) if not (math.isinf(n) or math.isinf(o))
    ]
    only_ours = sum(
        1 for n, o in zip(naive, ours, strict=True) if math.isinf(n) and not math.isinf(o)
    )
    if any(math.isinf(o) and not math.isinf(n) for n, o in zip(naive, ours, strict=True)):
        return -math.inf, len(both), only_ours
    if not both:
        return math.nan, 0, only_ours
    return reduction(sum(n for n, _ in both), sum(o for _, o in both)), len(both), only_ours


# --- the closing figures -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Summary:
    """The default policy (stress awareness on) against naive and exponential, pooled over
    every seed given: the figures the benchmark ends with, and their targets."""

    failed_attempts_reduction_vs_naive: float
    recovery_time_reduction_vs_naive: float
    wrong_deaths: int
    stuck_auto_resolved: float
    recovery_outages_compared: int = 0
    recovery_outages_only_ours: int = 0
    first_success_after_outage_s: float = math.nan
    backlog_median_s: tuple[tuple[str, float], ...] = ()  # (policy, median) naive, exp., ours
    backlog_recovery_reduction_vs_naive: float = math.nan
    backlog_recovery_reduction_vs_exponential: float = math.nan
    calls_into_outage: tuple[int, int] = (0, 0)  # (default, naive)
    wrong_deaths_per_seed: tuple[tuple[int | None, int], ...] = ()
    outages: int = 0  # over which the medians are taken
    poison_slowdown: float | None = None  # None: the scenario was not run

    @property
    def calls_into_outage_vs_naive(self) -> float:
        ours, naive = self.calls_into_outage
        return ours / naive if naive else math.nan

    def lines(self) -> list[str]:
        """The name=value lines; the last one, the headline, is what `make bench` collects."""
        lines = [
            f"failed_attempts_reduction_vs_naive={self.failed_attempts_reduction_vs_naive:.3f}",
            f"stuck_auto_resolved={self.stuck_auto_resolved:.3f}",
            f"wrong_deaths={self.wrong_deaths}",
            f"calls_into_outage_vs_naive={self.calls_into_outage_vs_naive:.3f}",
        ]
        if self.poison_slowdown is not None:
            lines.append(f"poison_slowdown={self.poison_slowdown:.3f}")
        return [
            *lines,
            f"first_success_after_outage_s={self.first_success_after_outage_s:.2f}",
            f"recovery_time_reduction_vs_naive={self.recovery_time_reduction_vs_naive:.3f}",
            "backlog_recovery_reduction_vs_exponential="
            f"{self.backlog_recovery_reduction_vs_exponential:.3f}",
            f"backlog_recovery_reduction_vs_naive={self.backlog_recovery_reduction_vs_naive:.3f}",
        ]

    def verdicts(self) -> list[str]:
        """One line per figure: what it is, its value, its target, met or not."""
        ours, naive = self.calls_into_outage
        seeds = ", ".join(f"seed {s}: {n}" for s, n in self.wrong_deaths_per_seed)
        medians = ", ".join(f"{label} {_duration(v)}" for label, v in self.backlog_median_s)
        out = [
            f"failed attempts, 1 - default / naive: {self.failed_attempts_reduction_vs_naive:.3f}"
            f" (target >= {TARGET_FAILED_REDUCTION:.2f}): "
            + _mark(self.failed_attempts_reduction_vs_naive >= TARGET_FAILED_REDUCTION),
            f"stuck chunks resolved without an operator: {self.stuck_auto_resolved:.3f}"
            f" (target {TARGET_STUCK_RESOLVED:.2f}): "
            + _mark(self.stuck_auto_resolved >= TARGET_STUCK_RESOLVED),
            f"chunks dead though they could have completed: {self.wrong_deaths} ({seeds})"
            f" (target {TARGET_WRONG_DEATHS}): " + _mark(self.wrong_deaths <= TARGET_WRONG_DEATHS),
            f"calls into outages, default / naive: {ours} / {naive}"
            f" (target <= {TARGET_CALLS_INTO_OUTAGE:.2f}): "
            + _mark(self.calls_into_outage_vs_naive <= TARGET_CALLS_INTO_OUTAGE),
        ]
        if self.poison_slowdown is not None:
            out.append(
                "drain time with 1% malformed chunks / without, default:"
                f" {self.poison_slowdown:.3f} (target <= {TARGET_POISON_SLOWDOWN:.1f}): "
                + _mark(self.poison_slowdown <= TARGET_POISON_SLOWDOWN)
            )
        recovery = self.recovery_time_reduction_vs_naive
        return [
            *out,
            f"first success after an outage, default, median over {self.outages} outage(s):"
            f" {_duration(self.first_success_after_outage_s)}"
            f" (target <= {TARGET_FIRST_SUCCESS_S:.0f} s): "
            + _mark(self.first_success_after_outage_s <= TARGET_FIRST_SUCCESS_S),
            "old figure, throughput back after an outage, like for like vs naive:"
            f" {recovery:.3f} (target >= {TARGET_RECOVERY_REDUCTION:.2f}): "
            + (
                "not measurable"
                if math.isnan(recovery)
                else _mark(recovery >= TARGET_RECOVERY_REDUCTION)
            )
            + f" ({self.recovery_outages_compared} outage(s) both recovered from,"
            f" {self.recovery_outages_only_ours} only the default did)",
            f"backlog recovered after an outage, median over {self.outages} outage(s): {medians}",
            "  reduction vs exponential:"
            f" {self.backlog_recovery_reduction_vs_exponential:.3f} (no target of its own)",
            f"  reduction vs naive: {self.backlog_recovery_reduction_vs_naive:.3f}"
            f" (target >= {TARGET_BACKLOG_REDUCTION:.2f}): "
            + _mark(self.backlog_recovery_reduction_vs_naive >= TARGET_BACKLOG_REDUCTION),
        ]


def _mark(ok: bool) -> str:
    return "met" if ok else "MISSED"


def _duration(value: float) -> str:
    return f"{value:.2f} s" if math.isfinite(value) else seconds(value)


def summarize(
    metrics: Sequence[Metrics],
    subject: str = DEFAULT_STRESS,
    *,
    poison_slowdown: float | None = None,
) -> Summary:
    """The subject (chunksync's default policy, stress awareness on) against naive and
    exponential, over every run in `metrics` (one per policy and seed): counts are summed,
    outages pooled in seed order."""
    naive, expo, ours = (
        [m for m in metrics if m.label == label] for label in (NAIVE, EXPONENTIAL, subject)
    )
    recovery, compared, only_ours = recovery_reduction(
        [s for m in naive for s in m.recovery_s], [s for m in ours for s in m.recovery_s]
    )

    def backlog_median(runs: list[Metrics]) -> float:
        return median([o.backlog_recovery_s for m in runs for o in m.outages])

    medians = [(m[0].label, backlog_median(m)) for m in (naive, expo, ours) if m]
    ours_backlog = backlog_median(ours)
    stuck = sum(m.stuck_chunks for m in ours)
    return Summary(
        failed_attempts_reduction_vs_naive=reduction(
            float(sum(m.failed for m in naive)), float(sum(m.failed for m in ours))
        ),
        recovery_time_reduction_vs_naive=recovery,
        wrong_deaths=sum(m.dead_wrong for m in ours),
        stuck_auto_resolved=sum(m.stuck_resolved for m in ours) / stuck if stuck else 1.0,
        recovery_outages_compared=compared,
        recovery_outages_only_ours=only_ours,
        first_success_after_outage_s=median([o.first_success_s for m in ours for o in m.outages]),
        backlog_median_s=tuple(medians),
        backlog_recovery_reduction_vs_naive=reduction(backlog_median(naive), ours_backlog),
        backlog_recovery_reduction_vs_exponential=reduction(backlog_median(expo), ours_backlog),
        calls_into_outage=(sum(m.into_outage for m in ours), sum(m.into_outage for m in naive)),
        wrong_deaths_per_seed=tuple((m.seed, m.dead_wrong) for m in ours),
        outages=sum(len(m.outages) for m in ours),
        poison_slowdown=poison_slowdown,
    )


# --- the report ----------------------------------------------------------------------------


def table(metrics: Sequence[Metrics], dependencies: Sequence[str]) -> list[str]:
    """A plain-text table: one row per metric, one column per policy."""
    rows: list[tuple[str, list[str]]] = [
        ("attempts", [str(m.attempts) for m in metrics]),
        ("held by the gate (no call)", [str(m.held) for m in metrics]),
        ("failed attempts", [str(m.failed) for m in metrics]),
        ("wasted on permanent failures", [str(m.wasted_permanent) for m in metrics]),
        ("calls into an outage", [str(m.into_outage) for m in metrics]),
        ("  per chunk hit (amplification)", [f"{m.amplification:.2f}" for m in metrics]),
        ("chunks completed", [str(m.completed) for m in metrics]),
        ("chunks dead, rightly (permanent)", [str(m.dead_right) for m in metrics]),
        ("chunks dead, wrongly (transient)", [str(m.dead_wrong) for m in metrics]),
        ("chunks left unfinished", [str(m.left) for m in metrics]),
    ]
    for n, dep in enumerate(dependencies):
        rows += [
            (f"{dep}'s outage: first success after (s)", _outage(metrics, n, "first_success_s")),
            ("  backlog (chunks)", [str(m.outages[n].backlog) for m in metrics]),
            ("  backlog resolved after (s)", _outage(metrics, n, "backlog_recovery_s")),
            ("  throughput back after (s)", [_whole(m.recovery_s[n]) for m in metrics]),
        ]
    rows += [
        ("throughput back, total (s)", [_whole(m.recovery_total_s) for m in metrics]),
        ("stuck chunks (worker died)", [str(m.stuck_chunks) for m in metrics]),
        ("  resolved automatically", [str(m.stuck_resolved) for m in metrics]),
        ("  recoveries run", [str(m.recoveries) for m in metrics]),
        ("time to finish the run (s)", [f"{m.finished_s:.0f}" for m in metrics]),
    ]
    first = max(len(r[0]) for r in rows)
    widths = [max(len(m.label), *(len(r[1][k]) for r in rows)) for k, m in enumerate(metrics)]
    header = " " * first + "".join(
        f"  {m.label:>{w}}" for m, w in zip(metrics, widths, strict=True)
    )
    out = [header, "-" * len(header)]
    for name, values in rows:
        cells = "".join(f"  {v:>{w}}" for v, w in zip(values, widths, strict=True))
        out.append(f"{name:<{first}}{cells}")
    return out


def _outage(metrics: Sequence[Metrics], n: int, field: str) -> list[str]:
    return [seconds(float(getattr(m.outages[n], field))) for m in metrics]


def _whole(value: float) -> str:
    return "never" if math.isinf(value) else f"{value:.0f}"


def _stream_lines(result: SimResult) -> list[str]:
    stream = result.stream
    chunks = sum(len(d.chunks) for d in stream.dependencies)
    lines = [f"fault stream: seed {stream.seed}, {chunks} chunks"]
    for d in stream.dependencies:
        parts = [f"{len(d.chunks)} chunks, {d.slots} slots"]
        if d.rate_limit is not None:
            parts.append(f"rate limit {d.rate_limit.start_s:.0f}-{d.rate_limit.end_s:.0f} s")
        if d.outage is not None:
            o = d.outage
            parts.append(f"outage {o.start_s:.0f}-{o.end_s:.0f} s ({o.failure})")
        parts.append(f"{sum(c.doomed for c in d.chunks)} doomed chunks")
        lines.append(f"  {d.name}: " + ", ".join(parts))
    return lines


def poison_lines(poison: Sequence[tuple[SimResult, SimResult]]) -> tuple[list[str], float | None]:
    """The malformed-records scenario's lines, per policy, and the default's slowdown (None if
    it was not run). Each pair is one policy's run with the malformed chunks and without."""
    if not poison:
        return [], None
    stream = poison[0][0].stream
    bad = sum(c.doomed for d in stream.dependencies for c in d.chunks)
    chunks = sum(len(d.chunks) for d in stream.dependencies)
    lines = [f"malformed records: seed {stream.seed}, {chunks} chunks, {bad} malformed for good"]
    slowdown: float | None = None
    for sick, healthy in poison:
        ratio = sick.finished_s / healthy.finished_s if healthy.finished_s else math.nan
        if sick.label == DEFAULT_STRESS:
            slowdown = ratio
        lines.append(
            f"  {sick.label}: drained in {sick.finished_s:.0f} s with them,"
            f" {healthy.finished_s:.0f} s without: x{ratio:.3f}"
        )
    return lines, slowdown


def report(
    results: Sequence[SimResult],
    *,
    other_seeds: Sequence[Sequence[SimResult]] = (),
    poison: Sequence[tuple[SimResult, SimResult]] = (),
) -> list[str]:
    """Per seed the stream and the table; the definitions; the malformed-records scenario if it
    was run; per seed its figures; then every figure with its target, and the name=value lines
    (pooled over the seeds)."""
    runs = [results, *other_seeds]
    per_seed = [[measure(r) for r in run] for run in runs]
    lines: list[str] = []
    for run, metrics in zip(runs, per_seed, strict=True):
        lines += _stream_lines(run[0])
        outages = [d.name for d in run[0].stream.dependencies if d.outage is not None]
        lines += [*table(metrics, outages), ""]
    lines.append("definitions:" + DEFINITIONS.rstrip())
    extra, slowdown = poison_lines(poison)
    if extra:
        lines += ["", *extra]
    if len(runs) > 1:
        lines += ["", "per seed (default against naive):"]
        for metrics in per_seed:
            one = summarize(metrics)
            lines.append(f"  seed {metrics[0].seed}: " + ", ".join(one.lines()))
    summary = summarize([m for metrics in per_seed for m in metrics], poison_slowdown=slowdown)
    seeds = ", ".join(str(metrics[0].seed) for metrics in per_seed)
    lines += ["", f"chunksync's default policy (stress awareness on), seed(s) {seeds}:"]
    lines += [f"  {v}" for v in summary.verdicts()]
    return lines + summary.lines()
