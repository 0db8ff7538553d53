"""The dependency rows: read and changed under a row lock, in the transaction that acts on them.

`claim` is the heart: for one dependency whose limits or gate matter, it locks the row, asks the
gate (one probe per interval for the whole fleet while probing, nothing while stopped), counts
the slots in use (chunks in flight under their leases plus extra slots), takes rate units for
as many chunks as it may lease, leases them and writes the row back: one transaction, so no
worker acts on a stale copy and a killed worker's slots come back with its leases.
Dependencies without limits never come here: their chunks are claimed by the plain claim,
which leaves out every queue whose dependency is limited or gated.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from chunksync.backends.base import Backend, Row, Session, in_transaction
from chunksync.deps import gate, permits, regroup
from chunksync.deps.gate import DepState, Flow
from chunksync.deps.model import Limits, Rate
from chunksync.deps.permits import Lane, Units
from chunksync.exceptions import NotFound
from chunksync.models import Chunk, claimed_chunks
from chunksync.retry import Gate, StressConfig
from chunksync.tenants import keep_quotas


@dataclass(frozen=True, slots=True)
class Dependency:
    """A dependency's row as the CLI, the dashboard and the metrics show it."""

    name: str
    limits: Limits
    state: DepState
    capacity: float | None
    in_flight: int = 0
    extra_slots: int = 0
    permits: int = 0  # connection permits held by slot threads (capped dependencies)
    active_queues: int = 0
    probes: int = 0
    cap_waits: int = 0
    rate_waits: int = 0
    gate_waits: int = 0
    # since when its chunks are moving to another claim group after a change of its limits
    # (chunksync.deps.regroup); None when none is
    regroup_since: float | None = None

    @property
    def slots_in_use(self) -> int:
        """Capped: the permits held (a slot thread runs its chunks through one, back to back);
        otherwise the chunks in flight. Plus the extra slots of `ctx.slot()`."""
        held = self.permits if self.limits.connections is not None else self.in_flight
        return held + self.extra_slots

    def as_dict(self) -> dict[str, Any]:
        s = self.state
        return {
            "name": self.name,
            **self.limits.as_dict(),
            "flow": s.flow.value,
            "tokens": s.tokens if self.capacity is not None else None,
            "capacity": self.capacity,
            "next_probe_at": s.next_probe_at,
            "gated_since": s.gated_since,
            "slots_in_use": self.slots_in_use,
            "active_queues": self.active_queues,
            "probes": self.probes,
            "cap_waits": self.cap_waits,
            "rate_waits": self.rate_waits,
            "gate_waits": self.gate_waits,
        }


@dataclass(frozen=True, slots=True)
class Special:
    """A dependency a worker treats apart (one with an active queue): its limits, its row."""

    limits: Limits
    row: Row

    @property
    def limited(self) -> bool:
        """Whether claims of its chunks go through `DependencyStore.claim` (limited or gated)."""
        return self.limits.any or str(self.row.get("flow") or "ok") != Flow.OK.value


@dataclass(frozen=True, slots=True)
class Claimed:
    """What one dependency's claim leased, whether it is the gate's probe, and why it leased
    fewer than asked (None, "gate", "connections" or "rate") with how long until it may try."""

    token: str
    chunks: list[Chunk]
    probe: bool = False
    waiting_for: str | None = None
    wait_s: float = 0.0
    permit: str | None = None  # the connection permit it was leased under (capped dependency)
    delays: list[float] = field(default_factory=list)  # each chunk's rate unit falls due then
    spacing: float = 0.0  # the least time between two calls of the slot (its rate share)

    def delay(self, index: int) -> float:
        """Seconds from the claim until chunk `index` may make its call (0: at once)."""
        return self.delays[index] if index < len(self.delays) else 0.0


def limits_of(row: Row) -> Limits:
    rate = None
    if row.get("rate_units") is not None and row.get("rate_period_s") is not None:
        rate = Rate(float(row["rate_units"]), float(row["rate_period_s"]))
    connections, burst = row.get("connections"), row.get("burst")
    return Limits(
        None if connections is None else int(connections),
        rate,
        None if burst is None else int(burst),
    )


def state_of(row: Row, config: StressConfig | None = None) -> DepState:
    """The row's state; a budget written as NULL is full (of `config`'s capacity)."""
    tokens = row.get("tokens")
    full = (config or StressConfig()).capacity
    return DepState(
        tokens=full if tokens is None else float(tokens),
        flow=Flow(str(row.get("flow") or "ok")),
        next_probe_at=_float(row.get("next_probe_at")),
        probe_interval_s=float(row.get("probe_interval_s") or 0.0),
        gated_since=_float(row.get("gated_since")),
        tat=float(row.get("tat") or 0.0),
    )


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def dependency_of(row: Row) -> Dependency:
    capacity = _float(row.get("capacity"))
    return Dependency(
        name=str(row["name"]),
        limits=limits_of(row),
        state=state_of(row, StressConfig(capacity=capacity) if capacity else None),
        capacity=capacity if row.get("tokens") is not None else None,
        in_flight=int(row.get("in_flight") or 0),
        extra_slots=int(row.get("extra_slots") or 0),
        permits=int(row.get("permits") or 0),
        active_queues=int(row.get("active_queues") or 0),
        probes=int(row.get("probes") or 0),
        cap_waits=int(row.get("cap_waits") or 0),
        rate_waits=int(row.get("rate_waits") or 0),
        gate_waits=int(row.get("gate_waits") or 0),
        regroup_since=_float(row.get("regroup_since")),
    )


class DependencyStore:
    """Every read and write of the dependency rows, once, on top of a backend."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self._list = backend.list_param

    # --- reading -------------------------------------------------------------------------

    def all(self) -> list[Dependency]:
        return [dependency_of(r) for r in self.backend.fetch_all("deps_list")]

    def get(self, name: str) -> Dependency:
        for dep in self.all():
            if dep.name == name:
                return dep
        known = ", ".join(d.name for d in self.all()) or "none yet"
        raise NotFound(f"no dependency named '{name}' (known: {known})")

    def special(self) -> tuple[float, dict[str, Special]]:
        """The database's clock and, for every dependency a worker must treat apart (limited,
        gated, or with a budget below full) that has an active queue, its limits and state."""
        found: dict[str, Special] = {}
        now = 0.0
        for r in self.backend.fetch_all("deps_special"):
            now = float(r["now"])
            found[str(r["name"])] = Special(limits_of(r), r)
        return now, found

    # --- declaring and operating ---------------------------------------------------------

    def declare(self, name: str, limits: Limits) -> None:
        """Set a dependency's limits (the row is made if new)."""

        def work(s: Session) -> bool:
            s.execute("deps_ensure", {"name": name})
            row = s.fetch_one("deps_lock", {"name": name})
            assert row is not None
            s.execute("deps_set_limits", _limit_params(name, limits))
            return self.regroup(s, name, limits_of(row), limits)

        if in_transaction(self.backend, work):
            regroup.move(self.backend, name, budget_s=regroup.REGROUP_TURN_S)

    def regroup(self, s: Session, name: str, before: Limits, after: Limits) -> bool:
        """After a change of a dependency's limits in this transaction: where the database
        keeps claim groups and the dependency became limited or stopped being so, its queues'
        rows are locked and the mark left that its chunks are to move to their new group;
        True if so, and its caller moves them after the commit (`regroup.move`), in batches."""
        if self.backend.claim_groups and before.any != after.any:
            regroup.mark(s, name)
            return True
        return False

    def set_flow(self, name: str, stopped: bool, config: StressConfig) -> DepState:
        """An operator stops a dependency (nothing is claimed) or starts it (flow, full budget)."""
        with self.backend.transaction() as s:
            row = s.fetch_one("deps_lock", {"name": name})
            if row is None:
                raise NotFound(f"no dependency named '{name}'")
            now = float(row["now"])
            state = gate.stop(state_of(row, config), now) if stopped else gate.start(config)
            self._save(s, name, state, config, full=not stopped)
            return state

    def name_queue(self, queue_id: str, dependency: str) -> None:
        """Name the dependency of a queue that had none; its chunks join the dependency's
        claim group if it is limited."""

        def work(s: Session) -> bool:
            if s.execute("deps_queue_set", {"id": queue_id, "dependency": dependency}):
                row = s.fetch_one("deps_get", {"name": dependency})
                if row is not None:
                    return self.regroup(s, dependency, Limits(), limits_of(row))
            return False

        if in_transaction(self.backend, work):
            regroup.move(self.backend, dependency, budget_s=regroup.REGROUP_TURN_S)

    def unnamed_queues(self) -> list[Row]:
        return self.backend.fetch_all("deps_queues_unnamed")

    # --- the worker's side ---------------------------------------------------------------

    def claim(
        self,
        name: str,
        *,
        queue_id: str | None = None,
        worker_id: str,
        kinds: Sequence[str],
        limit: int,
        lease_s: float,
        config: StressConfig,
        permit: str | None = None,
        waits: dict[str, int] | None = None,
    ) -> Claimed:
        """Lease up to `limit` chunks of one dependency's active queues (only of `queue_id`'s
        when given), within its gate and limits.

        A capped dependency's chunks are leased under a connection permit: `permit` (held by
        the calling slot thread from an earlier claim) while it is live, else a new one if the
        cap has room. A claim that leases nothing gives its permit back. Rate units are
        reserved, one per chunk, at moments up to half a second ahead (`Claimed.delays`); a
        capped dependency's from the permit's lane of the rate (chunksync.deps.permits).
        `waits` are waits the caller counted without a write, added to the row's counters."""
        token = str(uuid.uuid4())
        with self.backend.transaction() as s:
            row = s.fetch_one("deps_lock", {"name": name})
            if row is None:
                return Claimed(token, [])
            now, limits = float(row["now"]), limits_of(row)
            verdict, state = gate.admit(state_of(row, config), config, now)
            want, waiting, wait = self._allowance(verdict, state, limit, now)
            lane: Lane | None = None
            if want and limits.connections is not None:
                lane = permits.hold(s, name, permit, limits, worker_id, lease_s)
                if lane is None:
                    want, waiting = 0, "connections"
            units = Units(limits, state, lane, now)
            delays = units.reserve(want)
            if len(delays) < want and waiting is None:
                waiting, wait = "rate", units.wait_s()
            chunks: list[Chunk] = []
            if delays:
                chunks = self._lease(
                    s, name, queue_id, token, worker_id, kinds, len(delays), lease_s
                )
                units.give_back(len(delays) - len(chunks))
            state = units.state
            kept = permits.keep(s, lane, chunks, token, lease_s)
            if lane is None and permit is not None:  # the gate holds: no call, no connection
                s.execute("deps_permit_release", {"id": permit})
            probe = verdict is Gate.PROBE and bool(chunks)
            if verdict is Gate.PROBE and not chunks:
                state = state_of(row, config)  # no chunk to probe with: the probe is not spent
            counts = dict(waits or {})
            counts["probes"] = int(probe)
            counts[waiting or "none"] = counts.get(waiting or "none", 0) + 1
            if not chunks:
                # Only a wait counter (and perhaps a permit given back) changes: no need to wait
                # for the disk (a count lost in a crash is harmless, a permit expires with its
                # lease), so a fleet waiting on a full cap or a shut gate costs no flush.
                s.execute("deps_relaxed_commit")
            self._save(s, name, state, config, counts=counts)
            spacing = units.spacing if chunks else 0.0
            return Claimed(
                token, chunks, probe, waiting, wait, kept, delays[: len(chunks)], spacing
            )

    @staticmethod
    def _allowance(
        verdict: Gate, state: DepState, limit: int, now: float
    ) -> tuple[int, str | None, float]:
        """How many chunks the gate allows, and what holds the rest."""
        if verdict is Gate.HOLD:
            until = state.next_probe_at
            return 0, "gate", 0.0 if until is None else max(0.0, until - now)
        return (1 if verdict is Gate.PROBE else limit), None, 0.0

    def free_slots(self, name: str, cap: int) -> int:
        """The cap's room as an unlocked read sees it (what an operator or a test reads; a
        worker's claim reads it with the dependency's readiness in one statement: `ready`)."""
        used = self.backend.fetch_one("deps_in_use", {"name": name})
        return cap - int(used["n"] if used else 0)

    def ready(
        self, name: str, kinds: Sequence[str], queue_id: str | None = None
    ) -> tuple[int, bool]:
        """Without a lock or a write: the dependency's slots in use, and whether a chunk of its
        active queues of `kinds` (of `queue_id`'s alone when given) is runnable now."""
        params = {"name": name, "kinds": self._list(kinds), "queue_id": queue_id}
        row = self.backend.fetch_one("deps_ready", params)
        return (int(row["n"]), bool(row["runnable"])) if row else (0, False)

    def release_permit(self, permit: str) -> None:
        self.backend.execute("deps_permit_release", {"id": permit})

    def _lease(
        self,
        s: Session,
        name: str,
        queue_id: str | None,
        token: str,
        worker_id: str,
        kinds: Sequence[str],
        limit: int,
        lease_s: float,
    ) -> list[Chunk]:
        params = {
            "token": token,
            "lease_s": lease_s,
            "worker_id": worker_id,
            "limit": limit,
            "kinds": self._list(kinds),
            "dependency": name,
            "queue_id": queue_id,
        }
        # In the claim's order for the quotas' give-back, which gives back a tenant's last;
        # then as a dependency's slot runs them.
        chunks = claimed_chunks(*s.fetch_table("claim_chunks_of", params))
        chunks = keep_quotas(s, self._list, token, chunks)
        chunks.sort(key=lambda c: (-c.priority, c.seq))
        return chunks

    def record(
        self,
        name: str,
        config: StressConfig,
        *,
        cost: float,
        successes: int,
        probe_succeeded: bool,
    ) -> tuple[DepState, float]:
        """A batch of outcomes of one dependency's calls (see chunksync.deps.gate.record): the
        row's new state and the database's clock."""
        with self.backend.transaction() as s:
            s.execute("deps_ensure", {"name": name})
            row = s.fetch_one("deps_lock", {"name": name})
            assert row is not None
            before = state_of(row, config)
            state = gate.record(
                before,
                config,
                cost=cost,
                successes=successes,
                probe_succeeded=probe_succeeded,
                now=float(row["now"]),
            )
            if state != before:
                self._save(s, name, state, config)
            return state, float(row["now"])

    def take(self, name: str, units: int) -> tuple[int, float]:
        """Take up to `units` of a dependency's rate limit for a handler's own calls: how many
        were granted, and how long until the next one may be taken."""
        with self.backend.transaction() as s:
            row = s.fetch_one("deps_lock", {"name": name})
            if row is None:
                return units, 0.0
            now, limits, config = float(row["now"]), limits_of(row), _config_of(row)
            state = state_of(row, config)
            granted, after = gate.take(state, limits, units, now)
            if after != state:
                self._save(s, name, after, config, counts={"rate": int(granted < units)})
            return granted, gate.wait_s(after, limits, 1, now) if granted < units else 0.0

    def take_slot(self, name: str, chunk_id: str, token: str) -> str | None:
        """An extra slot of the dependency for a running chunk: its id, or None when the cap is
        reached (or the chunk's lease is lost)."""
        with self.backend.transaction() as s:
            row = s.fetch_one("deps_lock", {"name": name})
            slot_id = str(uuid.uuid4())
            params = {"id": slot_id, "name": name, "chunk_id": chunk_id, "token": token}
            if row is None or limits_of(row).connections is None:
                return slot_id if s.execute("deps_slot_take", params) else None
            s.execute("deps_slots_sweep", {"name": name})
            used = s.fetch_one("deps_in_use", {"name": name})
            if int(used["n"] if used else 0) >= int(row["connections"]):
                config = _config_of(row)
                self._save(s, name, state_of(row, config), config, counts={"connections": 1})
                return None
            return slot_id if s.execute("deps_slot_take", params) else None

    def release_slot(self, slot_id: str) -> None:
        self.backend.execute("deps_slot_release", {"id": slot_id})

    def _save(
        self,
        s: Session,
        name: str,
        state: DepState,
        config: StressConfig | None,
        *,
        full: bool = False,
        counts: dict[str, int] | None = None,
    ) -> None:
        counts = counts or {}
        capacity = None if config is None else config.capacity
        at_full = full or (capacity is not None and state.tokens >= capacity)
        s.execute(
            "deps_save",
            {
                "name": name,
                "tokens": None if at_full else state.tokens,
                "capacity": capacity,
                "flow": state.flow.value,
                "next_probe_at": state.next_probe_at,
                "probe_interval_s": state.probe_interval_s,
                "gated_since": state.gated_since,
                "tat": state.tat,
                "probes": counts.get("probes", 0),
                "cap_waits": counts.get("connections", 0),
                "rate_waits": counts.get("rate", 0),
                "gate_waits": counts.get("gate", 0),
            },
        )


def _config_of(row: Row) -> StressConfig:
    """A config whose capacity is the row's, so that writing its state back keeps its budget as
    it was (a rate unit or a wait changes neither its tokens nor its capacity)."""
    capacity = _float(row.get("capacity"))
    return StressConfig(capacity=capacity) if capacity else StressConfig()


def _limit_params(name: str, limits: Limits) -> dict[str, Any]:
    return {
        "name": name,
        "connections": limits.connections,
        "rate_units": None if limits.rate is None else limits.rate.units,
        "rate_period_s": None if limits.rate is None else limits.rate.period_s,
        "burst": limits.burst,
    }
