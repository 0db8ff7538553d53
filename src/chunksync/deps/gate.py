"""The shared gate, retry budget and rate limit of one dependency: pure rules over plain state.

No clock, no I/O: every function takes `now` (the database's clock, so machines with skewed
clocks agree) and returns the new state. The database store applies them to a dependency's row
under a row lock; the policy simulation applies them to a state it keeps in memory. What is
benchmarked is what runs.

The gate has three states:
- `ok`: calls flow. Each dependency fault (timeout, network, temporary, rate_limit) costs tokens
  of the retry budget; each success gives a fraction back.
- `probing`: the budget fell `hysteresis` tokens below its stress line. One call per probe
  interval goes through for the whole fleet (claims of the dependency's chunks take exactly one
  chunk, the probe); the interval starts short (`probe_min_interval_s`) so that the end of a
  short outage is seen at once, and doubles with each probe up to `probe_interval_s`. A
  successful probe (or a batch of successes without faults) reopens the flow with the tokens at
  the stress line. Below the line a dependency is stressed (its failing chunks are deferred
  rather than spend attempts) while calls still flow; the gate shuts only `hysteresis` tokens
  further down, so that one stray failure right after recovery does not shut it again.
- `stopped`: an operator closed it (`chunksync deps close NAME`); nothing is claimed until it is
  opened again (`chunksync deps open NAME`: flow, full budget).

The rate limit is GCRA (the generic cell rate algorithm): one number, the theoretical arrival
time `tat`, per dependency. Taking n units at `now` moves it to max(tat, now) + n/rate; it is
allowed while that stays within `burst` units of `now`.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, replace

from chunksync.deps.model import Limits
from chunksync.retry import Gate, StressConfig


class Flow(enum.StrEnum):
    OK = "ok"
    PROBING = "probing"
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class DepState:
    """A dependency's shared state, as its row holds it."""

    tokens: float
    flow: Flow = Flow.OK
    next_probe_at: float | None = None  # probing: when the fleet's next probe may go
    probe_interval_s: float = 0.0  # probing: the interval the next probe will use
    gated_since: float | None = None  # when the flow last stopped being ok
    tat: float = 0.0  # the rate limit's theoretical arrival time

    @property
    def gated(self) -> bool:
        return self.flow is not Flow.OK


def fresh(config: StressConfig) -> DepState:
    return DepState(tokens=config.capacity)


def _line(config: StressConfig) -> float:
    return config.capacity * config.threshold


def record(
    state: DepState,
    config: StressConfig,
    *,
    cost: float,
    successes: int,
    probe_succeeded: bool,
    now: float,
) -> DepState:
    """A batch of outcomes: `cost` tokens of dependency faults, `successes` calls that worked
    (the chunk's own failures count as neither). Faults may start probing; a successful probe,
    or more successes than faults while probing, reopens the flow."""
    if state.flow is Flow.STOPPED:
        return state
    tokens = max(0.0, state.tokens - cost)
    faults = cost > 0
    if state.flow is Flow.PROBING:
        if probe_succeeded or (successes > 0 and not faults):
            return _reopen(state, config)
        return replace(state, tokens=tokens)
    tokens = min(config.capacity, tokens + successes * config.success_refund)
    if tokens < _line(config) - config.hysteresis:
        return replace(
            state,
            tokens=tokens,
            flow=Flow.PROBING,
            next_probe_at=now + _min_interval(config),
            probe_interval_s=_min_interval(config),
            gated_since=now,
        )
    return replace(state, tokens=tokens)


def _min_interval(config: StressConfig) -> float:
    return min(config.probe_min_interval_s, config.probe_interval_s)


def _reopen(state: DepState, config: StressConfig) -> DepState:
    tokens = _line(config)
    return replace(
        state,
        tokens=max(tokens, state.tokens),
        flow=Flow.OK,
        next_probe_at=None,
        probe_interval_s=0.0,
        gated_since=None,
    )


def admit(state: DepState, config: StressConfig, now: float) -> tuple[Gate, DepState]:
    """What a claim may take of this dependency now. While probing, the first claim at or after
    `next_probe_at` takes the probe and pushes the next one an interval further, the interval
    doubling up to `probe_interval_s`."""
    if state.flow is Flow.OK:
        return Gate.CLOSED, state
    if state.flow is Flow.STOPPED or state.next_probe_at is None or now < state.next_probe_at:
        return Gate.HOLD, state
    interval = state.probe_interval_s or _min_interval(config)
    grown = min(config.probe_interval_s, max(interval * 2.0, _min_interval(config)))
    return Gate.PROBE, replace(state, next_probe_at=now + interval, probe_interval_s=grown)


def stop(state: DepState, now: float) -> DepState:
    """An operator closes the dependency: nothing is claimed until it is opened."""
    return replace(state, flow=Flow.STOPPED, next_probe_at=None, gated_since=now)


def start(config: StressConfig) -> DepState:
    """An operator opens the dependency: calls flow with a full budget."""
    return fresh(config)


# --- the rate limit (GCRA) -----------------------------------------------------------------


def take(state: DepState, limits: Limits, units: int, now: float) -> tuple[int, DepState]:
    """Take up to `units` of the rate limit at `now`: how many were granted, and the state."""
    if limits.rate is None or units <= 0:
        return units, state
    emission = 1.0 / limits.rate.per_s
    backlog = max(0.0, state.tat - now)  # seconds of calls already promised ahead of now
    room = limits.burst_units() * emission - backlog
    # Epoch seconds carry ~1e-7 s of rounding: a hair's tolerance, never a whole unit.
    granted = min(units, max(0, math.floor(room / emission + 1e-6)))
    if granted == 0:
        return 0, state
    return granted, replace(state, tat=max(state.tat, now) + granted * emission)


def wait_s(state: DepState, limits: Limits, units: int, now: float) -> float:
    """How long until `units` can be taken at once (0: now). More than the burst never can:
    the caller takes them in parts."""
    if limits.rate is None:
        return 0.0
    emission = 1.0 / limits.rate.per_s
    need = min(units, max(1, math.floor(limits.burst_units())))
    backlog = max(0.0, state.tat - now)
    return max(0.0, backlog + (need - limits.burst_units()) * emission)


def reserve(
    state: DepState, limits: Limits, units: int, now: float, ahead_s: float
) -> tuple[list[float], DepState]:
    """Take up to `units` of the rate limit, each for its own moment: the offsets from `now`
    at which each may be spent, none further than `ahead_s` ahead. A claim of n chunks takes n
    units in one transaction and its slot spaces the calls by them, so a batch never bursts
    past the rate and the next claim need not wait for the last unit to fall due."""
    if limits.rate is None or units <= 0:
        return [0.0] * max(units, 0), state
    emission = 1.0 / limits.rate.per_s
    tolerance = (limits.burst_units() - 1.0) * emission  # how early a unit may go
    offsets: list[float] = []
    tat = state.tat
    while len(offsets) < units:
        at = max(now, tat - tolerance)
        if at - now > ahead_s + 1e-9:
            break
        offsets.append(at - now)
        tat = max(tat, now) + emission
    if not offsets:
        return [], state
    return offsets, replace(state, tat=tat)
