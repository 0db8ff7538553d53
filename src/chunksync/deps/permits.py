"""Connection permits of capped dependencies, and the lanes of their rate.

A slot thread holds a permit (a row of `dependency_permits`) while it runs a capped dependency's
chunks, like a connection of a pool: claim after claim under it, so the cap counts connections,
not claim-to-result cycles. A permit counts against the cap while it is not past its time (a
lease, pushed on by each claim under it) or while the last chunk of its latest claim still runs
under that claim's lease (the slot runs its chunks in order), so a killed worker's permits come
back with its leases. The claim that finds no work gives its permit back.

A rate-limited claim reserves its chunks' rate units at once, each for its own moment (GCRA with
n units, at most AHEAD_S ahead). On a capped dependency each permit is a lane of the rate
(rate / cap, its own arrival time on the permit's row) and its slot paces its own calls by the
lane: a slot that fell behind never bunches calls with another slot's, so the fleet's calls in
any second stay within the rate plus one per permit.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace

from chunksync.backends.base import Session
from chunksync.deps import gate
from chunksync.deps.gate import DepState
from chunksync.deps.model import Limits, Rate
from chunksync.models import Chunk

# How far ahead a claim reserves rate units for its chunks: a slot spaces its calls by them.
# Between two claims a lane's moments pass unused (the report, the claim's commit): half a
# second ahead lost ~20% of the rate that way (utilization 0.78 in bench_fleet), a second ~2%.
AHEAD_S = 1.0


@dataclass(slots=True)
class Lane:
    """A connection permit a claim runs under: its id and, for a rate-limited dependency, its
    lane of the rate (a share of 1/cap, its own GCRA arrival time `tat`)."""

    permit: str
    cap: int
    tat: float


class Units:
    """A claim's rate units: from the permit's lane when the dependency is capped (each slot
    thread paces its own share, so a slot running late never bunches its calls with another's),
    else from the dependency's own GCRA. Each unit falls due at its own moment."""

    def __init__(self, limits: Limits, state: DepState, lane: Lane | None, now: float) -> None:
        self.state, self.lane, self.now = state, lane, now
        self.limits = limits
        if lane is not None and limits.rate is not None:
            share = Rate(limits.rate.units / lane.cap, limits.rate.period_s)
            self.limits = Limits(rate=share, burst=1)
        self._lane_state = DepState(tokens=0.0, tat=lane.tat if lane else 0.0)

    @property
    def _on_lane(self) -> bool:
        return self.lane is not None and self.limits.rate is not None

    @property
    def spacing(self) -> float:
        """The least time between two calls of one slot thread (0: no rate)."""
        return 0.0 if self.limits.rate is None else 1.0 / self.limits.rate.per_s

    def reserve(self, want: int) -> list[float]:
        if not self._on_lane:
            delays, self.state = gate.reserve(self.state, self.limits, want, self.now, AHEAD_S)
            return delays
        delays, self._lane_state = gate.reserve(
            self._lane_state, self.limits, want, self.now, AHEAD_S
        )
        assert self.lane is not None
        self.lane.tat = self._lane_state.tat
        return delays

    def wait_s(self) -> float:
        on = self._lane_state if self._on_lane else self.state
        return gate.wait_s(on, self.limits, 1, self.now)

    def give_back(self, units: int) -> None:
        """Units reserved for chunks that were not there to lease: the latest ones."""
        if units <= 0 or self.limits.rate is None:
            return
        back = units / self.limits.rate.per_s
        if self._on_lane:
            assert self.lane is not None
            self.lane.tat -= back
        else:
            self.state = replace(self.state, tat=self.state.tat - back)


def hold(
    s: Session,
    name: str,
    held: str | None,
    limits: Limits,
    worker_id: str,
    lease_s: float,
) -> Lane | None:
    """The connection permit to claim under: `held` if it is still live, else a new one if
    the cap has room (None: it has not)."""
    cap = limits.connections or 0
    s.execute("deps_permits_sweep", {"name": name})
    if held is not None:
        row = s.fetch_one("deps_permit_held", {"id": held, "name": name})
        if row is not None:
            return Lane(held, cap, float(row["tat"] or 0.0))
    s.execute("deps_slots_sweep", {"name": name})
    used = s.fetch_one("deps_in_use", {"name": name})
    if int(used["n"] if used else 0) >= cap:
        return None
    permit = str(uuid.uuid4())
    params = {"id": permit, "name": name, "worker_id": worker_id, "lease_s": lease_s}
    s.execute("deps_permit_take", params)
    return Lane(permit, cap, 0.0)


def keep(
    s: Session, lane: Lane | None, chunks: list[Chunk], token: str, lease_s: float
) -> str | None:
    """A permit stays live while the last chunk of its latest claim runs (the slot runs
    them in order) and for a lease after; a claim that found nothing gives it back."""
    if lane is None:
        return None
    if not chunks:
        s.execute("deps_permit_release", {"id": lane.permit})
        return None
    params = {
        "id": lane.permit,
        "chunk_id": chunks[-1].id,
        "token": token,
        "lease_s": lease_s,
        "tat": lane.tat,
    }
    s.execute("deps_permit_renew", params)
    return lane.permit
