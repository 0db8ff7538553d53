"""Forecasts, scaling advice, burn-rate alerts and degradation detection on simulated traces.

Four arrival traces, one value a minute on a simulated clock (so the figures mean the same on a
busy machine): steady (4/s), diurnal (4/s +- 60% over a day), bursty (2/s with spikes to 3x a
few minutes long) and a step (3/s, then 7/s from hour 6). Each is replayed through the real
code: chunksync.observe.forecast (Holt, Erlang C, advice), chunksync.observe.slo (burn-rate
alerts), chunksync.observe.degradation (Page-Hinkley). Figures:

- forecast_mape: mean absolute percentage error of the forecast mean arrival rate of the next
  15 minutes, on the steady and the diurnal traces (the worse of the two); target <= 0.2.
- advice_within_1_worker: share of 15-minute windows, on every trace, in which the advice is
  within one slot of the simulated optimum: the fewest slots with which an event simulation of
  that window (its real arrivals, exponential service) keeps the p95 wait within the objective;
  target >= 0.9.
- sla_breach_lead_s: on the step trace, with the slots advised before the step kept, how long
  before the SLA breaks (p95 wait over the SLO period, here one day, past the objective) the
  fast burn-rate alert fires; target >= 300.
- degradation_detect_s: the time from a 2x processing-time step to its alert; target <= 300,
  and no alert on the steady, diurnal or bursty trace (else the figure is reported as inf).

    python -m benchmarks.bench_forecast [SEED]
"""

from __future__ import annotations

import heapq
import math
import random
import statistics
import sys
from collections.abc import Callable

from chunksync.observe import degradation, forecast, slo

MINUTES = 12 * 60
WARMUP_MIN = 60
WINDOW_MIN = 15
SERVICE_S = 0.5
WAIT_OBJECTIVE_S = 2.0
STEP_AT_MIN = 6 * 60
Trace = list[float]  # arrival rate (per second) of each minute


def steady(rng: random.Random) -> Trace:
    return [4.0] * MINUTES


def diurnal(rng: random.Random) -> Trace:
    return [4.0 * (1 + 0.6 * math.sin(2 * math.pi * m / 1440)) for m in range(MINUTES)]


def bursty(rng: random.Random) -> Trace:
    rates = [2.0] * MINUTES
    m = 0
    while m < MINUTES:
        m += rng.randint(20, 60)
        for k in range(m, min(m + rng.randint(2, 5), MINUTES)):
            rates[k] = 6.0
    return rates


def step(rng: random.Random) -> Trace:
    return [3.0 if m < STEP_AT_MIN else 7.0 for m in range(MINUTES)]


TRACES: dict[str, Callable[[random.Random], Trace]] = {
    "steady": steady,
    "diurnal": diurnal,
    "bursty": bursty,
    "step": step,
}


def arrivals(rates: Trace, rng: random.Random) -> list[list[float]]:
    """Each minute's arrival times (seconds from the start), a Poisson process per minute."""
    out: list[list[float]] = []
    for m, rate in enumerate(rates):
        times: list[float] = []
        t = m * 60.0 + rng.expovariate(rate)
        while t < (m + 1) * 60.0:
            times.append(t)
            t += rng.expovariate(rate)
        out.append(times)
    return out


def simulate(times: list[float], slots: int, service: list[float]) -> list[tuple[float, float]]:
    """M/G/c in arrival order: (claimed at, waited) for every arrival."""
    free = [0.0] * slots
    out: list[tuple[float, float]] = []
    for t, s in zip(times, service, strict=True):
        start = max(t, heapq.heappop(free))
        heapq.heappush(free, start + s)
        out.append((start, start - t))
    return out


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1] if len(values) > 1 else 0.0


def optimum(times: list[float], rng: random.Random) -> int:
    service = [rng.expovariate(1 / SERVICE_S) for _ in times]
    c = max(1, math.floor(len(times) / (WINDOW_MIN * 60) * SERVICE_S))
    while p95([w for _, w in simulate(times, c, service)]) > WAIT_OBJECTIVE_S:
        c += 1
    return c


def replay(name: str, rates: Trace, rng: random.Random) -> tuple[list[float], list[bool]]:
    """Forecast errors and advice hits (within one slot) over one trace."""
    per_minute = arrivals(rates, rng)
    holt = forecast.Holt()
    errors: list[float] = []
    hits: list[bool] = []
    for m, times in enumerate(per_minute):
        holt.update(len(times) / 60.0)
        if m < WARMUP_MIN or m + WINDOW_MIN >= MINUTES:
            continue
        actual = sum(len(x) for x in per_minute[m + 1 : m + 1 + WINDOW_MIN]) / (WINDOW_MIN * 60)
        predicted = holt.mean_forecast(WINDOW_MIN) or 0.0
        errors.append(abs(predicted - actual) / actual)
        if m % WINDOW_MIN == 0:
            advice = forecast.advise(
                name,
                arrival=holt,
                service_s=SERVICE_S,
                backlog=0,
                current_slots=0,
                wait_objective_s=WAIT_OBJECTIVE_S,
            )
            window = [t for x in per_minute[m + 1 : m + 1 + WINDOW_MIN] for t in x]
            hits.append(abs(advice.recommended_slots - optimum(window, rng)) <= 1)
    return errors, hits


def breach_lead(rng: random.Random) -> float:
    """Seconds between the fast burn alert and the SLA breach, slots fixed before the step."""
    per_minute = arrivals(step(rng), rng)
    times = [t for x in per_minute for t in x]
    slots = forecast.slots_for_wait(3.0, SERVICE_S, WAIT_OBJECTIVE_S)
    served = simulate(times, slots, [rng.expovariate(1 / SERVICE_S) for _ in times])
    objective = slo.Objective("wait", WAIT_OBJECTIVE_S, period_s=86400.0)
    good = [0] * (MINUTES * 4)
    bad = [0] * (MINUTES * 4)
    for claimed, waited in served:
        (bad if waited > WAIT_OBJECTIVE_S else good)[int(claimed // 60)] += 1
    alert_at = breach_at = None
    for m in range(MINUTES * 4):

        def count(window_s: float, m: int = m) -> tuple[int, int]:
            lo = max(0, m + 1 - int(window_s // 60))
            return sum(good[lo : m + 1]), sum(bad[lo : m + 1])

        if alert_at is None and slo.burn_alerts("step", objective, count):
            alert_at = m
        g, b = count(objective.period_s)
        if breach_at is None and (b / (g + b) if g + b else 0.0) > objective.budget:
            breach_at = m
        if alert_at is not None and breach_at is not None:
            break
    if alert_at is None or breach_at is None:
        return -math.inf
    return (breach_at - alert_at) * 60.0


def detection(rng: random.Random, slower_at: int | None, rates: Trace) -> tuple[float, int]:
    """(seconds from the 2x step to its alert, or inf; false alerts before the step)."""
    ph = degradation.PageHinkley("queue")
    false_alerts = 0
    for m, rate in enumerate(rates):
        n = max(1, round(rate * 60))
        scale = 2.0 if slower_at is not None and m >= slower_at else 1.0
        mean = statistics.fmean(rng.expovariate(1 / (SERVICE_S * scale)) for _ in range(n))
        if ph.update(mean, n) is not None:
            if slower_at is None or m < slower_at:
                false_alerts += 1
            else:
                return (m - slower_at + 1) * 60.0, false_alerts
    return math.inf, false_alerts


def main(argv: list[str]) -> int:
    seed = int(argv[0]) if argv else 7
    rng = random.Random(seed)
    mape: dict[str, float] = {}
    hits: list[bool] = []
    for name, make in TRACES.items():
        errors, h = replay(name, make(rng), rng)
        mape[name] = statistics.fmean(errors)
        hits += h
        print(f"{name:8} forecast MAPE {mape[name]:.3f}, advice within 1 slot {sum(h)}/{len(h)}")
    lead = breach_lead(rng)
    detect, false_on_step = detection(rng, STEP_AT_MIN, steady(rng))
    _, false_steady = detection(rng, None, steady(rng))
    _, false_diurnal = detection(rng, None, diurnal(rng))
    _, false_bursty = detection(rng, None, bursty(rng))
    false_total = false_on_step + false_steady + false_diurnal + false_bursty
    print(
        f"false degradation alerts: steady {false_steady + false_on_step}, "
        f"diurnal {false_diurnal}, bursty {false_bursty}"
    )
    print(f"forecast_mape={max(mape['steady'], mape['diurnal']):.3f}")
    print(f"advice_within_1_worker={sum(hits) / len(hits):.3f}")
    print(f"sla_breach_lead_s={lead:.0f}")
    print(f"degradation_detect_s={detect if not false_total else math.inf:.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
