"""The worker's side of the fleet's shared dependency state: what it claims, and what it reports.

Claims: the plain claim (`Manager.claim`) leaves out, in its own statement, every queue whose
dependency is limited or gated. Those dependencies' chunks are claimed one dependency at a time
through `DependencyStore.claim`, under the dependency's row lock: within its free slots, its rate
units and its gate (one probe for the whole fleet per interval). Which dependencies are such is
read at most every SPECIAL_REFRESH_SECONDS, or less often when the read is long (a fleet with a
cap per mail account: SPECIAL_READ_SHARE); a stale list only costs a claim that finds nothing,
or a newly active dependency's chunks claimed that much later, never a limit broken, since the
row is read afresh under its lock.

Reports: each dependency's budget is this process's mirror of the shared row. Step 6 charges it
as outcomes come; step 7 sends what was charged (`report`) and adopts the row's state in return.
A healthy, full dependency's successes change nothing and cost no write.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence

from chunksync.deps import gate
from chunksync.deps.budget import RetryBudget, RetryBudgets
from chunksync.deps.gate import DepState
from chunksync.deps.store import Claimed, DependencyStore, Special, state_of
from chunksync.exceptions import BackendError
from chunksync.manager import Manager
from chunksync.models import Chunk
from chunksync.redact import redact
from chunksync.retry import StressConfig

log = logging.getLogger("chunksync.runtime.claims")

SPECIAL_REFRESH_SECONDS = 0.2
# The read of the dependencies treated apart takes at most this share of a worker's time: at
# 5,000 capped accounts with active queues it took 18 ms of the database and 35 ms of the worker
# (5,000 rows), five times a second in every worker process of the fleet.
SPECIAL_READ_SHARE = 0.02
# A rate-limited dependency's claim asks for at least this many chunks: the claim reserves
# their rate units at their own moments, at most a second of the rate ahead (permits.AHEAD_S),
# so the batch is bounded by the limit's pace, and one claim (and one commit) serves them all.
RATE_BATCH = 64
# A slot thread that found a cap full looks again after this long: permits are held while their
# threads have work, so one comes free rarely, and a fleet of waiting slots polling the row at
# every idle turn would take the database's time from the slots that hold them.
CAP_RECHECK_SECONDS = 0.2
# A plain claim slower than this is logged, at most every SLOW_CLAIM_LOG_SECONDS a worker: the
# database's load, or a backlog this worker cannot claim that lies ahead of its queues' chunks
# in the fair order, read past at each claim (docs/tenants.md's known limits).
SLOW_CLAIM_SECONDS = 0.5
SLOW_CLAIM_LOG_SECONDS = 60.0
# After limited dependencies' claims took chunks, the plain claim is skipped for this long once
# it found nothing: at 2,000 capped accounts an empty plain claim cost more of the database
# than the dependency's claim beside it. A plain queue's chunks wait at most this much longer.
PLAIN_RECHECK_SECONDS = 0.2
# Step 7 sends its batch's dependencies' outcomes; every budget this worker uses is looked at
# this often, for outcomes charged outside a batch (the upkeep's stress feed).
REPORT_ALL_SECONDS = 1.0


class Claims:
    """Step 2's claims for one worker, and step 7's reports of its dependencies' budgets."""

    def __init__(
        self, manager: Manager, budgets: RetryBudgets, *, worker_id: str, lease_s: float
    ) -> None:
        self.manager = manager
        # Told (dependency, permits still held) when a slot thread gives a dependency's permit
        # back (its claim found no work): the sources close the connections kept open beyond.
        self.on_permit_back: Callable[[str, int], None] | None = None
        self.budgets = budgets
        self.store = DependencyStore(manager.backend)
        self.worker_id = worker_id
        self.lease_s = lease_s
        self._special: dict[str, Special] = {}
        self._read_at = -1e18
        self._refresh_s = SPECIAL_REFRESH_SECONDS
        self._not_before: dict[str, float] = {}  # a dependency's claim waits until then
        # Dependencies whose claim found no runnable chunk, not tried again until the list is
        # read again: a stale list of drained accounts cost a claim each at every turn.
        self._drained: set[str] = set()
        self._turn = 0
        self._sorted_of: dict[str, Special] | None = None  # the list that _sorted was made from
        self._sorted: list[tuple[str, Special]] = []
        self._uncapped: list[tuple[str, Special]] = []
        self._lock = threading.Lock()
        self._used: dict[str, RetryBudget] = {}  # the mirrors this worker charged
        self._reported_all_at = -1e18
        # Connection permits held, by (slot thread, dependency); waits counted without a write.
        self._permits: dict[tuple[int, str], str] = {}
        self._waits: dict[str, dict[str, int]] = {}
        self._cap_full_until: dict[tuple[int, str], float] = {}  # by (slot thread, dependency)
        self._slow_said_at = -1e18
        self._plain_empty_at = -1e18  # when a plain claim last found nothing
        self._queue_dependency: dict[str, str | None] = {}  # _dependency_of

    def budget(self, dependency: str, config: StressConfig) -> RetryBudget:
        """This process's mirror of a dependency's row, with the limits of `config` (the
        `[stress]` of the policy of the queue being processed)."""
        budget = self.budgets.get(dependency, config)
        self._used[dependency] = budget
        return budget

    # --- claiming ----------------------------------------------------------------------

    def special(self) -> dict[str, Special]:
        """The dependencies treated apart, read at most every SPECIAL_REFRESH_SECONDS (or so
        that the read takes SPECIAL_READ_SHARE of the time); their mirrors adopt the shared
        rows' states when read."""
        now = time.monotonic()
        with self._lock:
            if now - self._read_at < self._refresh_s:
                return self._special
            self._read_at = now
        marks = {name: budget.mark() for name, budget in self.budgets.items()}
        db_now, found = self.store.special()
        with self._lock:
            self._special = found
            self._drained = {name for name, dep in found.items() if not dep.row.get("runnable", 1)}
        for name, budget in self.budgets.items():
            mark = marks.get(name, -1)  # a budget made during the read: adopt nothing
            if name in found:
                budget.adopt(state_of(found[name].row, budget.config), db_now, mark=mark)
            elif not budget.flowing or budget.tokens < budget.config.capacity:
                # Its row is flowing and full (or absent): a peer's probe reopened it.
                budget.adopt(gate.fresh(budget.config), db_now, mark=mark)
        took = time.monotonic() - now
        with self._lock:
            self._refresh_s = max(SPECIAL_REFRESH_SECONDS, took / SPECIAL_READ_SHARE)
        return found

    def claim(
        self,
        kinds: Sequence[str],
        limit: int,
        *,
        queue_id: str | None,
        special: dict[str, Special],
    ) -> list[Claimed]:
        """Up to `limit` chunks: first from limited or gated dependencies (in turns, so that
        none starves; a dependency whose permit this thread holds first), then the rest by the
        plain claim (after dependencies' chunks, not again within PLAIN_RECHECK_SECONDS of one
        that found nothing)."""
        self._give_back_drained()
        leases = self._claim_limited(special, kinds, limit, queue_id)
        left = limit - sum(len(got.chunks) for got in leases)
        started = time.monotonic()
        if left > 0 and (not leases or started - self._plain_empty_at >= PLAIN_RECHECK_SECONDS):
            token, chunks = self.manager.claim(
                self.worker_id, kinds, limit=left, lease_s=self.lease_s, queue_id=queue_id
            )
            self._say_if_slow(started, len(chunks))
            self._plain_empty_at = -1e18 if chunks else started
            if chunks:
                leases.append(Claimed(token, chunks))
        return leases

    def _claim_limited(
        self, special: dict[str, Special], kinds: Sequence[str], limit: int, queue_id: str | None
    ) -> list[Claimed]:
        """Up to `limit` chunks of limited dependencies, in turns: one capped dependency's (a
        permit's worth) and any others'. Once a capped one's are taken only the uncapped are
        looked at: at 5,000 capped accounts, a pass over all of them was ~1.5 ms a claim."""
        mine = None if queue_id is None else self._dependency_of(queue_id)
        now = time.monotonic()
        first, uncapped = self._in_turn(special)
        leases: list[Claimed] = []
        tried: set[str] = set()
        left, capped_taken = limit, False
        for order in (first, uncapped):
            for name, dep in order:
                if left <= 0 or (capped_taken and order is first):
                    break
                if name in tried or not dep.limited or (mine is not None and mine != name):
                    continue
                if now < self._not_before.get(name, 0.0) or name in self._drained:
                    continue
                tried.add(name)
                want = max(left, RATE_BATCH) if dep.limits.rate is not None else left
                got = self._claim_of(name, dep, queue_id, kinds, want)
                if got is not None and got.chunks:
                    leases.append(got)
                    left -= len(got.chunks)
                    capped_taken = capped_taken or dep.limits.connections is not None
        return leases

    def _say_if_slow(self, started: float, claimed: int) -> None:
        took = time.monotonic() - started
        if took < SLOW_CLAIM_SECONDS or started - self._slow_said_at < SLOW_CLAIM_LOG_SECONDS:
            return
        self._slow_said_at = started
        log.warning(
            "a claim took %.1f s for %d chunk(s): the database is busy, or many pending chunks "
            "this worker cannot claim (a paused queue's, a limited dependency's, another "
            "fleet's kinds, a tenant's at its quota) come before its own in the fair order, "
            "and each claim reads past them (docs/tenants.md, known limits)",
            took, claimed,
        )  # fmt: skip

    def _dependency_of(self, queue_id: str) -> str | None:
        """The dependency of the one queue this worker claims from (a queue's never changes),
        read once."""
        if queue_id not in self._queue_dependency:
            row = self.manager.backend.fetch_one("get_queue_row", {"id": queue_id})
            found = None if row is None else row.get("dependency")
            self._queue_dependency[queue_id] = None if found is None else str(found)
        return self._queue_dependency[queue_id]

    def _claim_of(
        self, name: str, dep: Special, queue_id: str | None, kinds: Sequence[str], limit: int
    ) -> Claimed | None:
        """One dependency's claim. A capped dependency's chunks run through a connection
        permit this slot thread holds between claims, so that a slot runs them back to back
        without a claim per connection. A thread without one first looks, without a lock or a
        write, whether a chunk is runnable (if not, the dependency is drained for this worker
        until the list is read again) and whether the cap has room (its wait is counted with
        the next write)."""
        key = (threading.get_ident(), name)
        permit = self._permits.get(key)
        cap = dep.limits.connections
        if permit is None:
            if cap is not None and time.monotonic() < self._cap_full_until.get(key, 0.0):
                return None
            used, runnable = self.store.ready(name, kinds, queue_id)
            if not runnable:
                with self._lock:
                    self._drained.add(name)
                return None
            if cap is not None and cap - used <= 0:
                with self._lock:
                    waits = self._waits.setdefault(name, {})
                    waits["connections"] = waits.get("connections", 0) + 1
                    self._cap_full_until[key] = time.monotonic() + CAP_RECHECK_SECONDS
                return None
        with self._lock:
            waits = self._waits.pop(name, {})
        got = self.store.claim(
            name,
            queue_id=queue_id,
            worker_id=self.worker_id,
            kinds=kinds,
            limit=limit,
            lease_s=self.lease_s,
            config=self.budgets.get(name).timing,
            permit=permit,
            waits=waits,
        )
        with self._lock:
            gave_back = got.permit is None and self._permits.pop(key, None) is not None
            if got.permit is not None:
                self._permits[key] = got.permit
            if got.waiting_for is None and len(got.chunks) < limit:
                self._drained.add(name)  # it had no more runnable chunks
        if gave_back:
            self._permit_back(name)
        if got.waiting_for in ("gate", "rate") and got.wait_s > 0:
            self._not_before[name] = time.monotonic() + got.wait_s
        return got

    def _give_back_drained(self) -> None:
        """Give back this slot thread's permits of dependencies found drained, or gone from the
        list (no active queue): the chunks they were held for have run (the slot claims again
        only then), and a claim would find nothing and give the permit back, in a transaction
        of some ten statements, not one (a dependency gone from the list was never claimed
        again: its permit stayed until it expired)."""
        me = threading.get_ident()
        with self._lock:
            keys = [
                (thread, name)
                for thread, name in self._permits
                if thread == me and (name in self._drained or name not in self._special)
            ]
            back = [(name, self._permits.pop((thread, name))) for thread, name in keys]
        for name, permit in back:
            try:
                self.store.release_permit(permit)
            except BackendError as exc:  # it expires with its lease
                log.error("could not give a dependency permit back: %s", redact(str(exc)))
            self._permit_back(name)

    def _permit_back(self, name: str) -> None:
        """Tell the sources that this worker holds one permit of `name` fewer."""
        if self.on_permit_back is None:
            return
        with self._lock:
            held = sum(1 for _, held_name in self._permits if held_name == name)
        try:
            self.on_permit_back(name, held)
        except Exception as exc:  # a connection that will not close must not stop the slot
            log.warning("closing %s's idle connections failed: %s", name, redact(str(exc)))

    def give_back(self, leases: list[tuple[Chunk, str]]) -> None:
        """Release leased chunks unrun, their attempts refunded (one statement for the lot: a
        full batch is hundreds of chunks); one log line."""
        try:
            given = self.manager.release_many(leases, refund=True)
        except BackendError as exc:  # their leases will expire and recovery takes over
            error = redact(str(exc))
            log.error("%d chunk(s) not given back: database error: %s", len(leases), error)
            return
        released = [chunk.id for chunk, _token in leases if chunk.id in given]
        for chunk_id in released:
            log.debug("released chunk %s (attempt given back)", chunk_id)
        if released:
            shown = ", ".join(released[:3]) + (", ..." if len(released) > 3 else "")
            log.warning("released %d chunk(s), attempts given back: %s", len(released), shown)

    def release_permits(self) -> None:
        """Give back every connection permit this worker's slot threads hold (a stop)."""
        with self._lock:
            held, self._permits = list(self._permits.values()), {}
        for permit in held:
            try:
                self.store.release_permit(permit)
            except BackendError as exc:  # it expires with its lease
                log.error("could not give a dependency permit back: %s", redact(str(exc)))

    def _in_turn(
        self, special: dict[str, Special]
    ) -> tuple[list[tuple[str, Special]], list[tuple[str, Special]]]:
        """This claim's order: the dependencies whose permit this slot thread holds, then all
        of them in turns (one place further each claim, so that none starves); and the uncapped
        ones alone in turns. Sorted once a read of the list, not once a claim."""
        me = threading.get_ident()
        with self._lock:
            if self._sorted_of is not special:
                self._sorted_of = special
                self._sorted = sorted(special.items())
                self._uncapped = [i for i in self._sorted if i[1].limits.connections is None]
            items, uncapped = self._sorted, self._uncapped
            held = [name for thread, name in self._permits if thread == me]
            self._turn += 1
            turn = self._turn
        if not items:
            return [], []
        at, at_uncapped = turn % len(items), turn % max(1, len(uncapped))
        first = [(name, special[name]) for name in held if name in special]
        return first + items[at:] + items[:at], uncapped[at_uncapped:] + uncapped[:at_uncapped]

    # --- the limits as a handler reaches them (chunksync.context.DependencyLimits) -----------

    def rate_limited(self, dependency: str) -> bool:
        found = self.special().get(dependency)
        return found is not None and found.limits.rate is not None

    def capped(self, dependency: str) -> bool:
        found = self.special().get(dependency)
        return found is not None and found.limits.connections is not None

    def take(self, dependency: str, units: int) -> tuple[int, float]:
        return self.store.take(dependency, units)

    def take_slot(self, dependency: str, chunk_id: str, token: str) -> str | None:
        return self.store.take_slot(dependency, chunk_id, token)

    def release_slot(self, slot_id: str) -> None:
        self.store.release_slot(slot_id)

    def next_claim_in(self) -> float | None:
        """Seconds until a limited dependency's claim may find something (a rate or a gate)."""
        now = time.monotonic()
        waits = [t - now for t in self._not_before.values() if t > now]
        return min(waits) if waits else None

    # --- reporting ---------------------------------------------------------------------

    def report(self, dependencies: Iterable[str | None] | None = None) -> None:
        """Send pending outcomes to their shared rows, and adopt the rows' states: those of
        `dependencies` (a batch's), and every budget's at most every REPORT_ALL_SECONDS (all of
        them when None). Every budget after every batch cost 2 ms a batch at 2,000 per-account
        dependencies, a quarter of a worker's CPU."""
        now = time.monotonic()
        with self._lock:
            every = dependencies is None or now - self._reported_all_at >= REPORT_ALL_SECONDS
            if every:
                self._reported_all_at = now
        if every:
            names = list(self._used)
        else:
            names = list({d for d in dependencies or () if d is not None and d in self._used})
        for name in names:
            budget = self._used[name]
            pending = budget.drain()
            if not budget.worth_reporting(pending):
                budget.reported(None)
                continue
            state: DepState | None = None
            db_now = 0.0
            try:
                state, db_now = self.store.record(
                    name,
                    budget.timing,
                    cost=pending.cost,
                    successes=pending.successes,
                    probe_succeeded=pending.probe_succeeded,
                )
            except BackendError as exc:  # the shared row misses these; the mirror keeps them
                log.error("dependency %s: could not record outcomes: %s", name, redact(str(exc)))
            finally:
                budget.reported(state, db_now)
