"""Service-level objectives and their burn-rate alerts, in the manner of the Google SRE workbook.

An objective says what share of events must be good over a period: for a queue's waiting time,
"95% of chunks are claimed within 30 s of becoming runnable"; for its completion deadline,
"95% of chunks complete within 1 h of being queued". The error budget is the share allowed to
be bad (5%); the burn rate is how fast a window spends it (bad share / budget share: 1 spends
exactly the budget over the period).

Alerts fire on two windows at once, a long one that proves the burn is real and a short one that
proves it is still going on (so an alert resolves soon after the cause stops), rather than on a
threshold that flaps: fast (1 h and 5 min) pages when 2% of the period's budget would go in an
hour, slow (6 h and 30 min) when 5% would go in six hours. The thresholds scale with the
objective's period: for 30 days they are the workbook's 14.4 and 6.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

HOUR_S = 3600.0
SLO_PERIOD_SECONDS = 30 * 86400.0


@dataclass(frozen=True, slots=True)
class Objective:
    """`target` of events must be good (e.g. wait within `threshold_s`) over `period_s`."""

    name: str  # "wait" or "deadline"
    threshold_s: float
    target: float = 0.95
    period_s: float = SLO_PERIOD_SECONDS

    @property
    def budget(self) -> float:
        return 1.0 - self.target


@dataclass(frozen=True, slots=True)
class BurnWindow:
    """An alert's pair of windows and the share of the period's budget it may spend."""

    name: str
    long_s: float
    short_s: float
    budget_share: float
    severity: str

    def threshold(self, objective: Objective) -> float:
        """The burn rate at which this window spends `budget_share` of the budget."""
        return self.budget_share * objective.period_s / self.long_s


FAST = BurnWindow("fast", HOUR_S, 300.0, 0.02, "critical")
SLOW = BurnWindow("slow", 6 * HOUR_S, 1800.0, 0.05, "warning")
WINDOWS = (FAST, SLOW)

# (window_s) -> (good events, bad events) over the last window_s seconds.
Counter = Callable[[float], tuple[int, int]]


def burn_rate(good: int, bad: int, objective: Objective) -> float | None:
    """How fast these events spend the budget (None: no events)."""
    total = good + bad
    if not total:
        return None
    return (bad / total) / objective.budget if objective.budget > 0 else float("inf")


@dataclass(frozen=True, slots=True)
class BurnAlert:
    window: str
    severity: str
    long_burn: float
    short_burn: float
    threshold: float
    message: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def burn_alerts(subject: str, objective: Objective, count: Counter) -> list[BurnAlert]:
    """The burn-rate alerts that hold now: both windows of a pair at or past its threshold."""
    found: list[BurnAlert] = []
    for w in WINDOWS:
        long_burn = burn_rate(*count(w.long_s), objective)
        short_burn = burn_rate(*count(w.short_s), objective)
        limit = w.threshold(objective)
        if long_burn is None or short_burn is None:
            continue
        if long_burn >= limit and short_burn >= limit:
            text = (
                f"{subject}: {objective.name} objective burning its budget {long_burn:.1f}x "
                f"over {w.long_s / HOUR_S:g} h and {short_burn:.1f}x over {w.short_s / 60:g} min "
                f"(alert at {limit:.1f}x)"
            )
            found.append(BurnAlert(w.name, w.severity, long_burn, short_burn, limit, text))
    return found


def budget_left(good: int, bad: int, objective: Objective) -> float | None:
    """The share of the period's error budget not yet spent (negative: overspent)."""
    total = good + bad
    if not total:
        return None
    allowed = objective.budget * total
    return 1.0 - bad / allowed if allowed > 0 else (1.0 if not bad else float("-inf"))
