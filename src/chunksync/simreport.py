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
recovery time      per outage: from the outage's end until the first moment t from which the
                   dependency completes, within [t, t + 30 s), at least 90% of the chunks per
                   second it completed in the 120 s before the outage; "never" if that does not
                   happen before its last completion. Summed over the dependencies.
recovery reduction compared outage by outage, like for like: 1 - sum(policy) / sum(naive) over
                   the outages both recovered from. An outage only the policy recovered from is
                   counted apart (naive killed the work left: that shows in its wrong deaths, and
                   "never" is no duration to divide by); one only naive recovered from makes the
                   reduction -inf; with no outage both recovered from, it is not measurable (nan).
stuck resolved     of the chunks whose worker died under them, the share that ended completed or
                   rightly dead without an operator
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass

from chunksync.models import ChunkStatus
from chunksync.simulate import DEFAULT_STRESS, NAIVE, SimResult

THROUGHPUT_WINDOW_SECONDS = 30.0
PRE_OUTAGE_SECONDS = 120.0
RECOVERED_SHARE = 0.9
RECOVERY_STEP_SECONDS = 1.0

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
    )


def reduction(baseline: float, value: float) -> float:
    """1 - value / baseline. A baseline that never recovered (inf) against one that did: 1.0;
    both never: 0.0; a baseline of 0 against more than 0: -inf."""
    if math.isinf(baseline):
        return 0.0 if math.isinf(value) else 1.0
    if baseline == 0:
        return 0.0 if value == 0 else -math.inf
    return 1.0 - value / baseline


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


@dataclass(frozen=True, slots=True)
class Summary:
    failed_attempts_reduction_vs_naive: float
    recovery_time_reduction_vs_naive: float
    wrong_deaths: int
    stuck_auto_resolved: float
    recovery_outages_compared: int = 0
    recovery_outages_only_ours: int = 0

    def lines(self) -> list[str]:
        return [
            f"failed_attempts_reduction_vs_naive={self.failed_attempts_reduction_vs_naive:.3f}",
            f"recovery_time_reduction_vs_naive={self.recovery_time_reduction_vs_naive:.3f}",
            f"wrong_deaths={self.wrong_deaths}",
            f"stuck_auto_resolved={self.stuck_auto_resolved:.3f}",
        ]

    def verdicts(self) -> list[str]:
        def mark(ok: bool) -> str:
            return "met" if ok else "MISSED"

        recovery = self.recovery_time_reduction_vs_naive
        compared = (
            f" ({self.recovery_outages_compared} outage(s) both recovered from; "
            f"{self.recovery_outages_only_ours} only the policy recovered from)"
        )
        return [
            f"target >= {TARGET_FAILED_REDUCTION:.0%} fewer failed attempts than naive: "
            + mark(self.failed_attempts_reduction_vs_naive >= TARGET_FAILED_REDUCTION),
            f"target >= {TARGET_RECOVERY_REDUCTION:.0%} faster recovery than naive: "
            + (
                "not measurable"
                if math.isnan(recovery)
                else mark(recovery >= TARGET_RECOVERY_REDUCTION)
            )
            + compared,
            f"target {TARGET_WRONG_DEATHS} wrong deaths: "
            + mark(self.wrong_deaths <= TARGET_WRONG_DEATHS),
            f"target {TARGET_STUCK_RESOLVED:.0%} of stuck chunks resolved automatically: "
            + mark(self.stuck_auto_resolved >= TARGET_STUCK_RESOLVED),
        ]


def summarize(metrics: Sequence[Metrics], subject: str = DEFAULT_STRESS) -> Summary:
    """chunksync's default policy (with stress awareness) against naive."""
    by_label = {m.label: m for m in metrics}
    naive, ours = by_label[NAIVE], by_label[subject]
    recovery, compared, only_ours = recovery_reduction(naive.recovery_s, ours.recovery_s)
    return Summary(
        reduction(float(naive.failed), float(ours.failed)),
        recovery,
        ours.dead_wrong,
        ours.stuck_resolved_share,
        compared,
        only_ours,
    )


def _seconds(value: float) -> str:
    return "never" if math.isinf(value) else f"{value:.0f}"


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
        rows.append(
            (f"recovery after {dep}'s outage (s)", [_seconds(m.recovery_s[n]) for m in metrics])
        )
    rows += [
        ("recovery, total (s)", [_seconds(m.recovery_total_s) for m in metrics]),
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


def report(results: Sequence[SimResult]) -> list[str]:
    """The table, the stream's windows, the definitions, the verdicts and the last lines."""
    metrics = [measure(r) for r in results]
    stream = results[0].stream
    lines = table(metrics, [d.name for d in stream.dependencies if d.outage is not None])
    lines.append("")
    chunks = sum(len(d.chunks) for d in stream.dependencies)
    lines.append(f"fault stream: seed {stream.seed}, {chunks} chunks")
    for d in stream.dependencies:
        parts = [f"{len(d.chunks)} chunks, {d.slots} slots"]
        if d.rate_limit is not None:
            parts.append(f"rate limit {d.rate_limit.start_s:.0f}-{d.rate_limit.end_s:.0f} s")
        if d.outage is not None:
            o = d.outage
            parts.append(f"outage {o.start_s:.0f}-{o.end_s:.0f} s ({o.failure})")
        parts.append(f"{sum(c.doomed for c in d.chunks)} doomed chunks")
        lines.append(f"  {d.name}: " + ", ".join(parts))
    lines.append("definitions:" + DEFINITIONS.rstrip())
    summary = summarize(metrics)
    lines.append("")
    lines.append("chunksync's default policy (stress awareness on) against naive:")
    lines += [f"  {v}" for v in summary.verdicts()]
    lines += summary.lines()
    return lines
