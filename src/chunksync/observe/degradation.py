"""Degradation and new-error-pattern detection, each an alert with its evidence.

Performance degradation: a change-point test (Page-Hinkley, one-sided: slower alerts, faster
does not) over the per-minute mean processing time, on a log scale and in units of its own
baseline noise (estimated over the first hour, then followed slowly while nothing is wrong).
Chosen over a same-hour baseline because it needs no week of history to start, reacts within
minutes to a step (a 2x slowdown is ~10 noise units per minute at a few hundred attempts a
minute), and by construction ignores load swings that do not change the time per attempt;
docs/scaling.md gives the reasoning and the figures.

New error pattern: a category (or rule) whose share of attempts over the recent window is both
at least NEW_PATTERN_MIN_SHARE and NEW_PATTERN_FACTOR times its baseline share, over at least
NEW_PATTERN_MIN_COUNT failures: rare before, common now.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

WARMUP_MINUTES = 60  # the baseline's first estimate
PH_DELTA = 1.0  # drift allowed per minute, in noise units
PH_LAMBDA = 20.0  # alarm when the cumulative excess passes this many noise units
BASELINE_ALPHA = 0.02  # how fast the baseline follows while nothing is wrong
MIN_NOISE = 0.02  # log-units: below this a quiet series would turn jitter into alarms
MIN_ATTEMPTS_PER_MINUTE = 5
NEW_PATTERN_MIN_SHARE = 0.05
NEW_PATTERN_FACTOR = 5.0
NEW_PATTERN_MIN_COUNT = 10


@dataclass(frozen=True, slots=True)
class Evidence:
    """What an alert rests on: the figures before and after, and the series to chart."""

    rule: str
    subject: str
    before: float
    after: float
    message: str
    series: list[float] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class PageHinkley:
    """Upward change-point detection over one series of per-minute mean processing times."""

    subject: str
    warmup: list[float] = field(default_factory=list)
    mean: float = 0.0
    noise: float = MIN_NOISE
    cumulative: float = 0.0
    minimum: float = 0.0
    recent: list[float] = field(default_factory=list)
    alarmed: bool = False

    def update(self, mean_s: float, attempts: int) -> Evidence | None:
        """Feed one minute; returns the evidence the minute the degradation is detected."""
        if attempts < MIN_ATTEMPTS_PER_MINUTE or mean_s <= 0:
            return None
        x = math.log(mean_s)
        self.recent = [*self.recent[-59:], mean_s]
        if len(self.warmup) < WARMUP_MINUTES:
            self.warmup.append(x)
            if len(self.warmup) == WARMUP_MINUTES:
                self.mean = sum(self.warmup) / len(self.warmup)
                var = sum((v - self.mean) ** 2 for v in self.warmup) / (len(self.warmup) - 1)
                self.noise = max(math.sqrt(var), MIN_NOISE)
            return None
        z = (x - self.mean) / self.noise
        self.cumulative += z - PH_DELTA
        self.minimum = min(self.minimum, self.cumulative)
        if self.cumulative - self.minimum > PH_LAMBDA:
            if self.alarmed:
                return None
            self.alarmed = True
            before, after = math.exp(self.mean), mean_s
            text = (
                f"{self.subject}: processing time rose from {before:.3g} s to {after:.3g} s "
                f"({after / before:.1f}x) - a change point, not a blip"
            )
            return Evidence("degradation", self.subject, before, after, text, list(self.recent))
        if self.cumulative - self.minimum < PH_LAMBDA / 2:
            self.alarmed = False  # recovered: the next rise alerts again
            self.mean += BASELINE_ALPHA * (x - self.mean)
        return None


def new_error_patterns(
    subject: str,
    baseline: dict[str, int],
    baseline_attempts: int,
    recent: dict[str, int],
    recent_attempts: int,
) -> list[Evidence]:
    """Categories (or rules) rare in the baseline window and common in the recent one."""
    found: list[Evidence] = []
    if not recent_attempts:
        return found
    for name, n in sorted(recent.items()):
        share = n / recent_attempts
        before = baseline.get(name, 0) / baseline_attempts if baseline_attempts else 0.0
        if n < NEW_PATTERN_MIN_COUNT or share < NEW_PATTERN_MIN_SHARE:
            continue
        if before and share < NEW_PATTERN_FACTOR * before:
            continue
        text = (
            f"{subject}: {name} failures are {share:.0%} of recent attempts "
            f"(were {before:.1%}): a new error pattern"
        )
        found.append(Evidence("new_error_pattern", f"{subject}:{name}", before, share, text))
    return found
