"""Forecasts and scaling advice: how much work is coming, and how many worker slots it needs.

Pure functions over plain numbers, so that `chunksync scale-advice`, the Prometheus gauge and
the forecasting benchmark (simulated traces, benchmarks/bench_forecast.py) run the same code.

- Arrival rate and service time per queue are smoothed with Holt's linear method (level and
  trend), fed one value per minute; the forecast h minutes ahead is level + h * trend, never
  below zero.
- Slots needed: the smallest c for which an M/M/c queue (Erlang C) keeps the p95 wait (runnable
  to claimed) within the objective, plus what drains today's backlog within the deadline.
  Little's law cross-checks it: c can never be below the offered load (arrival rate x service
  time), whatever the formula says.
- The verdict says "do not add workers" when the work is bound by something workers cannot
  widen: a dependency's connection cap or rate limit, or the database's drain rate.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

HOLT_ALPHA = 0.3  # level smoothing, per minute
HOLT_BETA = 0.05  # trend smoothing: slow, so that one busy minute is not a trend
FORECAST_MINUTES = (15, 30, 60)
MAX_SLOTS = 10_000  # advice beyond this is a configuration error, not a number to act on


@dataclass(slots=True)
class Holt:
    """Holt's linear exponential smoothing of one series (one value per step)."""

    alpha: float = HOLT_ALPHA
    beta: float = HOLT_BETA
    level: float | None = None
    trend: float = 0.0

    def update(self, value: float) -> None:
        if self.level is None:
            self.level = value
            return
        previous = self.level
        self.level = self.alpha * value + (1 - self.alpha) * (previous + self.trend)
        self.trend = self.beta * (self.level - previous) + (1 - self.beta) * self.trend

    def forecast(self, steps: float) -> float | None:
        """The value `steps` ahead (never negative), None before the first value."""
        if self.level is None:
            return None
        return max(0.0, self.level + steps * self.trend)

    def mean_forecast(self, steps: int) -> float | None:
        """The mean of the next `steps` values (what a window of that length will see)."""
        if self.level is None or steps < 1:
            return None
        if self.level + self.trend >= 0 and self.level + steps * self.trend >= 0:
            # No value cut at zero (a line between two values that are not negative): the mean
            # of an arithmetic series, without a sum a step (at 50,000 queues, 4 s a scrape).
            return self.level + self.trend * (steps + 1) / 2
        return sum(self.forecast(k) or 0.0 for k in range(1, steps + 1)) / steps


def erlang_c(servers: int, load: float) -> float:
    """The probability that an arrival waits, for `servers` servers offered `load` Erlangs."""
    if load <= 0:
        return 0.0
    if servers <= load:
        return 1.0
    term = 1.0  # load^k / k!, summed in a stable way
    total = 1.0
    for k in range(1, servers):
        term *= load / k
        total += term
    term *= load / servers
    last = term * servers / (servers - load)
    return last / (total + last)


def wait_quantile(servers: int, arrival_per_s: float, service_s: float, q: float) -> float:
    """The q-quantile of the wait in an M/M/c queue (seconds; inf when it never drains)."""
    load = arrival_per_s * service_s
    if arrival_per_s <= 0 or service_s <= 0:
        return 0.0
    if servers <= load:
        return math.inf
    waits = erlang_c(servers, load)
    if waits <= 1 - q:
        return 0.0
    drain = servers / service_s - arrival_per_s  # rate at which a waiting line shortens
    return math.log(waits / (1 - q)) / drain


def slots_for_wait(arrival_per_s: float, service_s: float, wait_s: float, q: float = 0.95) -> int:
    """The fewest slots that keep the q-quantile of the wait within wait_s (Erlang C)."""
    if arrival_per_s <= 0 or service_s <= 0:
        return 0
    c = max(1, math.floor(arrival_per_s * service_s) + 1)
    while c < MAX_SLOTS and wait_quantile(c, arrival_per_s, service_s, q) > wait_s:
        c += 1
    return c


def littles_law_slots(arrival_per_s: float, service_s: float) -> float:
    """Busy slots on average (L = lambda x W over the service): the floor of any advice."""
    return max(arrival_per_s, 0.0) * max(service_s, 0.0)


@dataclass(frozen=True, slots=True)
class Limits:
    """What caps a queue's throughput whatever the worker count (None: no such cap)."""

    dependency: str | None = None
    connections: int | None = None  # the dependency's concurrent-call cap
    rate_per_s: float | None = None  # the dependency's rate limit, in chunks per second
    database_per_s: float | None = None  # the database's measured drain rate


@dataclass(frozen=True, slots=True)
class Advice:
    """One queue's (or tenant's) scaling advice, with the figures it rests on."""

    subject: str
    arrival_per_s: float
    service_s: float | None
    backlog: int
    drain_s: float | None  # time to drain the backlog with the slots there are now
    forecast_per_s: dict[int, float]  # minutes ahead -> expected arrival rate
    current_slots: int
    recommended_slots: int
    littles_law_slots: float
    verdict: str  # "ok", "add", "remove", "do_not_add"
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _cap(limits: Limits, service_s: float) -> tuple[float | None, str]:
    """The throughput (chunks/s) past which workers add nothing, and what sets it."""
    caps: list[tuple[float, str]] = []
    if limits.connections is not None and service_s > 0:
        caps.append((limits.connections / service_s, f"{limits.connections} connection(s)"))
    if limits.rate_per_s is not None:
        caps.append((limits.rate_per_s, f"a rate limit of {limits.rate_per_s:g}/s"))
    if limits.database_per_s is not None:
        caps.append((limits.database_per_s, f"the database ({limits.database_per_s:g} chunks/s)"))
    if not caps:
        return None, ""
    rate, what = min(caps)
    if "database" not in what and limits.dependency:
        what = f"dependency {limits.dependency}: {what}"
    return rate, what


def advise(
    subject: str,
    *,
    arrival: Holt,
    service_s: float | None,
    backlog: int,
    current_slots: int,
    wait_objective_s: float,
    drain_deadline_s: float | None = None,
    limits: Limits = Limits(),  # frozen: shared safely
    horizon_min: int = FORECAST_MINUTES[0],
) -> Advice:
    """Slots needed over the next `horizon_min` minutes to keep the p95 wait within the
    objective (and drain the backlog within the deadline), with the verdict."""
    now_rate = arrival.forecast(0) or 0.0
    coming = arrival.mean_forecast(horizon_min) or now_rate
    forecasts = {m: arrival.mean_forecast(m) or 0.0 for m in FORECAST_MINUTES}
    if not service_s or service_s <= 0:
        return Advice(subject, now_rate, service_s, backlog, None, forecasts, current_slots,
                      current_slots, 0.0, "ok", "no service time measured yet")  # fmt: skip
    drain_s = _drain_time(backlog, coming, service_s, current_slots)
    extra = backlog / drain_deadline_s if drain_deadline_s and backlog else 0.0
    needed = slots_for_wait(coming + extra, service_s, wait_objective_s)
    floor = littles_law_slots(coming + extra, service_s)
    needed = max(needed, math.ceil(floor))
    cap, what = _cap(limits, service_s)
    if cap is not None and coming + extra > cap:
        useful = max(1, math.ceil(cap * service_s))
        verdict = "do_not_add" if current_slots >= useful else "add"
        reason = f"bound by {what}: more than {useful} slot(s) would only wait"
        return Advice(subject, now_rate, service_s, backlog, drain_s, forecasts, current_slots,
                      min(needed, useful), floor, verdict, reason)  # fmt: skip
    verdict = "add" if needed > current_slots else "remove" if needed < current_slots else "ok"
    reason = (
        f"{coming:.3g} chunks/s of {service_s:.3g} s each: {needed} slot(s) keep p95 wait "
        f"within {wait_objective_s:g} s"
    )
    return Advice(subject, now_rate, service_s, backlog, drain_s, forecasts, current_slots,
                  needed, floor, verdict, reason)  # fmt: skip


def _drain_time(backlog: int, arrival_per_s: float, service_s: float, slots: int) -> float | None:
    """Seconds until the backlog is gone at today's slots (None: it never drains)."""
    if not backlog:
        return 0.0
    spare = slots / service_s - arrival_per_s
    return backlog / spare if spare > 0 else None
