"""The policy benchmark's outage figures: what a user waits for once a dependency is back.

Per outage of a simulated run (chunksync.simulate), three numbers: how long after the outage's
end the dependency's first chunk completes, how long until the outage's backlog (the chunks that
failed, or were held, during it) is resolved, and how many calls went into the outage. Over
several outages, the median; against a baseline, a reduction with stated conventions for the
outages a policy never recovers from. The definitions are in docs/policy-benchmark.md and
chunksync.simreport, which prints them.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from chunksync.faults import Window
from chunksync.models import ChunkStatus
from chunksync.simulate import SimResult


@dataclass(frozen=True, slots=True)
class OutageFigures:
    """One outage of one dependency, under one policy; math.inf: never."""

    dependency: str
    first_success_s: float  # outage end -> the first completed call into the dependency
    backlog: int  # chunks with a failed or held attempt started inside the window
    backlog_recovery_s: float  # outage end -> the last of them resolved
    calls: int  # real calls (holds left out) started inside the window


def first_success_after(result: SimResult, dependency: str, outage: Window) -> float:
    """Seconds from the outage's end until a call into the dependency, started after it, first
    completes a chunk (when the success is known: the call's end); math.inf if none does."""
    ends = [
        a.finished_s
        for a in result.calls()
        if a.dependency == dependency and a.action == "completed" and a.started_s >= outage.end_s
    ]
    return min(ends) - outage.end_s if ends else math.inf


def backlog(result: SimResult, dependency: str) -> set[int]:
    """The outage's backlog: the chunks (seqs) that had a failed or held attempt started inside
    the window (every call started there fails; a hold is refused there)."""
    return {a.seq for a in result.attempts if a.dependency == dependency and a.into_outage}


def backlog_recovery(result: SimResult, dependency: str, outage: Window) -> float:
    """Seconds from the outage's end until every chunk of its backlog is resolved: completed,
    or dead when it could never have completed (its own permanent failure, which no policy can
    change). A chunk that died though it could have completed, or is left unfinished, is never
    resolved: math.inf. 0 when the backlog was resolved by the end (or is empty)."""
    seqs = backlog(result, dependency)
    last = outage.end_s
    for c in result.chunks:
        if c.dependency != dependency or c.seq not in seqs:
            continue
        resolved = c.status is ChunkStatus.COMPLETED or (c.status is ChunkStatus.DEAD and c.doomed)
        if not resolved or c.ended_s is None:
            return math.inf
        last = max(last, c.ended_s)
    return last - outage.end_s


def outage_figures(result: SimResult) -> tuple[OutageFigures, ...]:
    """The figures of each outage in the run's stream, in the stream's order."""
    figures = []
    for dep in result.stream.dependencies:
        if dep.outage is None:
            continue
        name = dep.name
        figures.append(
            OutageFigures(
                name,
                first_success_after(result, name, dep.outage),
                len(backlog(result, name)),
                backlog_recovery(result, name, dep.outage),
                sum(1 for a in result.calls() if a.dependency == name and a.into_outage),
            )
        )
    return tuple(figures)


def median(values: Sequence[float]) -> float:
    """The median, math.inf counted as the largest value (a median of "never" is never when
    more than half the outages never recovered); nan when there is nothing to take it of."""
    return statistics.median(values) if values else math.nan


def reduction(baseline: float, value: float) -> float:
    """1 - value / baseline. A baseline that never recovered (inf) against a value that did:
    1.0 (all of the wait is gone); both never: 0.0 (nothing is gained); a baseline of 0 against
    more than 0: -inf; nan in, nan out."""
    if math.isnan(baseline) or math.isnan(value):
        return math.nan
    if math.isinf(baseline):
        return 0.0 if math.isinf(value) else 1.0
    if baseline == 0:
        return 0.0 if value == 0 else -math.inf
    return 1.0 - value / baseline


def seconds(value: float) -> str:
    """A duration for a table: "never" for math.inf, "-" for nan (not measured)."""
    if math.isnan(value):
        return "-"
    return "never" if math.isinf(value) else f"{value:.1f}"
