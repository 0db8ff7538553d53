"""Every persistence operation on queues, chunks, attempts, workers and the audit log, once.

The manager runs a backend's named queries and holds the rules that need the database: the lease
fencing of every write a worker makes and the recovery of stuck chunks. The operator's
interventions with their audit entries are in `interventions.py`, mixed into `Manager`.
Backends stay thin; nothing here knows the dialect (a list parameter is the backend's
`list_param`).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from chunksync.backends.base import Backend, Params, Session, finite, rows_json, strict_json
from chunksync.exceptions import InvalidPayload, NotFound, StateError
from chunksync.ids import ordered_id
from chunksync.interventions import WORKER_TIMEOUT_SECONDS, Interventions
from chunksync.models import (
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_PRIORITY,
    DEFAULT_TENANT,
    Attempt,
    AuditEntry,
    Chunk,
    ChunkStatus,
    ErrorCategory,
    Outcome,
    Queue,
    QueueStatus,
    WorkerInfo,
    claimed_chunks,
)
from chunksync.results import FinishResult, Report, attempt_row, finish_row, with_outcome
from chunksync.retry import RetryPolicy
from chunksync.runtime.recovery import stuck_verdict
from chunksync.stalls import StallAbsolution
from chunksync.tenants import (
    AGING_SECONDS,
    CapsWatch,
    Placement,
    Tenants,
    keep_quotas,
    requeue_places,
)

INSERT_BATCH = 1000
STATISTICS_AFTER_CHUNKS = 1000  # a bulk insert this big refreshes the planner's statistics
RECOVER_BATCH = 100
UNIQUE_INSERT_TRIES = 3  # a key freed and taken again between two statements, twice: give up


# JSON's escape of a NUL character, not itself escaped (`\\u0000` is a backslash and "u0000").
_NUL_ESCAPE = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")


def dump_json(value: Any, what: str = "payload") -> str:
    """`strict_json`, its refusal worded for the chunk's `what`; text that one dialect could
    not store is refused in both, before it reaches either."""
    try:
        text = strict_json(value)
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidPayload(
            f"the chunk {what} holds a lone surrogate (such as \\udcff), which is not text "
            "that UTF-8 can store"
        ) from None
    except (TypeError, ValueError) as exc:
        raise InvalidPayload(f"the chunk {what} is not JSON-serialisable: {exc}") from None
    if "\\u0000" in text and _NUL_ESCAPE.search(text):
        raise InvalidPayload(
            f"the chunk {what} holds a NUL character (\\u0000), which PostgreSQL cannot store"
        )
    return text


@dataclass(frozen=True, slots=True)
class Recovery:
    chunk_id: str
    queue_id: str
    previous_worker: str | None
    to_status: ChunkStatus
    reason: str  # "stuck" or "crash_loop" or "stuck: out of attempts"


class Manager(Interventions, StallAbsolution):
    """Every persistence operation, once, on top of a backend (interventions and stall absolution:
    the mixins)."""

    def __init__(self, backend: Backend, *, aging_s: float = AGING_SECONDS) -> None:
        self.backend = backend
        self.aging_s = aging_s  # how long a lower-priority chunk waits at most (the aging bound)
        self._caps = CapsWatch()
        self.tenants = Tenants(backend, self._caps)

    # --- queues and chunks -----------------------------------------------------------------

    def create_queue(
        self,
        name: str,
        source: str,
        kind: str,
        payloads: Iterable[Any] = (),
        *,
        tenant: str = DEFAULT_TENANT,
        priority: int = DEFAULT_PRIORITY,
        policy: str = "default",
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        dependency: str | None = None,
        unique_key: str | None = None,
    ) -> Queue:
        """A queue and its chunks, in one transaction; `dependency` names what its source leans
        on (chunksync.deps), whose shared limits and gate its chunks are claimed under. With a
        `unique_key` that an unfinished queue of the tenant holds, that queue is returned and
        nothing is added (the database's unique index decides, so racing callers agree)."""
        if max_attempts < 1:
            raise InvalidPayload("max_attempts must be at least 1")
        queue_id = str(uuid.uuid4())
        params = {
            "id": queue_id,
            "tenant": tenant,
            "name": name,
            "source": source,
            "kind": kind,
            "priority": priority,
            "policy": policy,
            "max_attempts": max_attempts,
        }
        if unique_key is not None:
            return self._create_unique_queue(params, unique_key, payloads, dependency)
        with self.backend.transaction() as s:
            row = s.fetch_one("insert_queue", params)
            assert row is not None
            if dependency is not None:
                s.execute("deps_queue_set", {"id": queue_id, "dependency": dependency})
            added = self._insert_chunks(s, row, payloads)
        self._after_bulk_insert(added)
        return self.get_queue(queue_id)

    def _create_unique_queue(
        self, params: Params, unique_key: str, payloads: Iterable[Any], dependency: str | None
    ) -> Queue:
        """Insert unless the unique index refuses; then the queue holding the key. A holder
        that finished between the refusal and the look-up frees the key: try again."""
        params = {**params, "unique_key": unique_key}
        for _ in range(UNIQUE_INSERT_TRIES):
            with self.backend.transaction() as s:
                row = s.fetch_one("insert_queue_unique", params)
                if row is None:
                    held = s.fetch_one("queue_holding_key", params)
                else:
                    held = None
                    if dependency is not None:
                        s.execute("deps_queue_set", {"id": params["id"], "dependency": dependency})
                    added = self._insert_chunks(s, row, payloads)
            if row is not None:
                self._after_bulk_insert(added)
                return self.get_queue(str(params["id"]))
            if held is not None:
                return self.get_queue(str(held["id"]))
        raise StateError(f"the uniqueness key '{unique_key}' kept changing hands: try again")

    def add_chunks(self, queue_id: str, payloads: Iterable[Any]) -> int:
        queue = self.get_queue(queue_id)
        with self.backend.transaction() as s:
            row = {
                "id": queue.id,
                "tenant": queue.tenant,
                "priority": queue.priority,
                "max_attempts": queue.max_attempts,
            }
            added = self._insert_chunks(s, row, payloads)
            if added:
                s.execute("reopen_queue", {"id": queue.id})
        self._after_bulk_insert(added)
        return added

    def _after_bulk_insert(self, added: int) -> None:
        """The planner's statistics refreshed after a bulk insert that outgrew them."""
        if added < STATISTICS_AFTER_CHUNKS:
            return
        row = self.backend.fetch_one("chunk_statistics_stale", {"added": added})
        if row is not None and row["stale"]:
            self.backend.execute("refresh_chunk_statistics")

    def _insert_chunks(self, s: Session, queue: Params, payloads: Iterable[Any]) -> int:
        """Insert in batches, each batch's places in its tenant's fair order reserved at once;
        a batch past the tenant's queued quota raises, and the caller's transaction rolls back."""
        row = s.fetch_one("next_seq", {"queue_id": queue["id"]})
        seq = int(row["seq"]) if row else 1
        placement = Placement(s, str(queue["tenant"]), int(queue["priority"]))
        params = {
            "queue_id": str(queue["id"]),
            "tenant": queue["tenant"],
            "priority": queue["priority"],
            "max_attempts": queue["max_attempts"],
        }
        batch: list[list[Any]] = []
        added = 0
        for payload in payloads:
            batch.append([ordered_id(), seq, dump_json(payload)])
            seq += 1
            if len(batch) >= INSERT_BATCH:
                added += _insert_batch(s, placement, params, batch)
                batch = []
        if batch:
            added += _insert_batch(s, placement, params, batch)
        return added

    def get_queue(self, id_or_name: str, tenant: str = DEFAULT_TENANT) -> Queue:
        row = self.backend.fetch_one("get_queue", {"id": id_or_name, "tenant": tenant})
        if row is None:
            raise NotFound(f"no queue with id or name '{id_or_name}'")
        return Queue.from_row(row)

    def queue_row(self, queue_id: str) -> Queue:
        """A queue by id without its totals (`totals` empty): what a worker needs of it."""
        row = self.backend.fetch_one("get_queue_row", {"id": queue_id})
        if row is None:
            raise NotFound(f"no queue with id '{queue_id}'")
        return Queue.from_row(row)

    def list_queues(
        self, status: QueueStatus | None = None, tenant: str | None = None
    ) -> list[Queue]:
        # One tenant's: a query of its own, so that it reads the index that starts with the tenant.
        name = "list_queues" if tenant is None else "list_queues_tenant"
        rows = self.backend.fetch_all(name, {"status": status, "tenant": tenant})
        return [Queue.from_row(r) for r in rows]

    def queue_page(self, limit: int, offset: int = 0) -> tuple[list[Queue], int]:
        """A page of the queues (newest first, with totals) and how many there are in all."""
        rows = self.backend.fetch_all("list_queues_page", {"limit": limit, "offset": offset})
        counted = rows or self.backend.fetch_all("count_queues")
        return [Queue.from_row(r) for r in rows], int(counted[0]["n_queues"]) if counted else 0

    def get_chunk(self, chunk_id: str) -> Chunk:
        row = self.backend.fetch_one("get_chunk", {"id": chunk_id})
        if row is None:
            raise NotFound(f"no chunk with id '{chunk_id}'")
        return Chunk.from_row(row)

    def list_chunks(
        self,
        queue_id: str | None = None,
        status: ChunkStatus | None = None,
        category: ErrorCategory | None = None,
        limit: int = 100,
        tenant: str | None = None,
    ) -> list[Chunk]:
        params = {
            "queue_id": queue_id,
            "tenant": tenant,
            "status": status,
            "category": category,
            "limit": limit,
        }
        name = "list_chunks" if tenant is None else "list_chunks_tenant"
        return [Chunk.from_row(r) for r in self.backend.fetch_all(name, params)]

    def list_attempts(self, chunk_id: str) -> list[dict[str, Any]]:
        return self.backend.fetch_all("list_attempts", {"chunk_id": chunk_id})

    def list_audit(
        self, chunk_id: str | None = None, queue_id: str | None = None, limit: int = 100
    ) -> list[AuditEntry]:
        params = {"chunk_id": chunk_id, "queue_id": queue_id, "limit": limit}
        return [AuditEntry.from_row(r) for r in self.backend.fetch_all("list_audit", params)]

    def now(self) -> float:
        row = self.backend.fetch_one("now")
        assert row is not None
        return float(row["now"])

    # --- the worker's side: claim, heartbeat, finish ---------------------------------------------

    def claim(
        self,
        worker_id: str,
        kinds: Sequence[str],
        *,
        limit: int = 1,
        lease_s: float = 30.0,
        queue_id: str | None = None,
        exclude: Sequence[str] = (),
    ) -> tuple[str, list[Chunk]]:
        """Lease up to `limit` runnable chunks, none from the queues in `exclude`; returns the
        lease token and the chunks."""
        token = str(uuid.uuid4())
        params = {
            "token": token,
            "lease_s": lease_s,
            "worker_id": worker_id,
            "limit": limit,
            "kinds": self.backend.list_param(kinds),
            "exclude": self.backend.list_param(exclude),
            "queue_id": queue_id,
            "aging_s": self.aging_s,
        }
        if self._caps.capped(self.backend):
            # The claim counts each tenant's chunks in flight; then, holding the rows of the
            # capped tenants it took chunks of, it counts theirs again and gives back what a
            # claim at the same moment made too many (tenants.keep_quotas).
            with self.backend.transaction() as s:
                chunks = claimed_chunks(*s.fetch_table("claim_chunks", params))
                return token, keep_quotas(s, self.backend.list_param, token, chunks)
        # One statement, atomic alone (PostgreSQL's backend gives it a transaction of its
        # own only to plan it once a connection: postgres.GENERIC_PLAN_QUERIES).
        return token, claimed_chunks(*self.backend.fetch_table("claim_chunks", params, write=True))

    def heartbeat_chunk(
        self,
        chunk_id: str,
        token: str,
        lease_s: float,
        *,
        checkpoint: Any = None,
        items: int | None = None,
    ) -> bool:
        """Extend the lease (and save a checkpoint); False when the lease was lost."""
        params = {
            "id": chunk_id,
            "token": token,
            "lease_s": lease_s,
            "items": items,
            "checkpoint": None if checkpoint is None else dump_json(checkpoint, "checkpoint"),
        }
        return self.backend.execute("heartbeat_chunk", params) == 1

    def extend_leases(
        self, worker_id: str, leases: Sequence[tuple[str, str]], lease_s: float
    ) -> int:
        """Extend the leases a live worker holds, each a (chunk id, lease token): the chunks are
        found by id, and no index of the chunks in flight by worker is needed (migration 0021 on
        PostgreSQL). Returns how many were extended."""
        if not leases:
            return 0
        params = {
            "worker_id": worker_id,
            "ids": self.backend.list_param(sorted({chunk_id for chunk_id, _ in leases})),
            "tokens": self.backend.list_param(sorted({token for _, token in leases})),
            "lease_s": lease_s,
        }
        return self.backend.execute("extend_worker_leases", params)

    def finish(self, chunk: Chunk, token: str, result: FinishResult, attempt: Attempt) -> bool:
        """Write an attempt's result, fenced by the lease token. False when the lease was lost:
        then only the attempt's metrics are written, as lost_lease (or cancelled)."""
        return self.finish_many([Report(chunk, token, result, attempt)])[0]

    def finish_many(self, reports: Sequence[Report]) -> list[bool]:
        """Several results in one transaction and three statements, whatever their number (and
        two per tenant whose chunks go back to pending: their new places in the fair order);
        each chunk's write is fenced by its own lease token."""
        if not reports:
            return []
        with self.backend.transaction() as s:
            back = [r for r in reports if r.result.status is ChunkStatus.PENDING]
            places = requeue_places(s, [(r.chunk.tenant, r.chunk.priority) for r in back])
            keys = {r.chunk.id: key for r, key in zip(back, places, strict=True)}
            batch = rows_json([finish_row(r, keys.get(r.chunk.id)) for r in reports])
            # The written chunks' ids (each report knows its chunk's queue), as tuples: a dict a row
            # cost more than its one value.
            written = {str(row[0]) for row in s.fetch_table("finish_chunks", {"reports": batch})[1]}
            attempts = []
            for report in reports:
                attempt = report.attempt
                if report.chunk.id not in written:
                    row = s.fetch_one("get_chunk", {"id": report.chunk.id})
                    cancelled = row is not None and row["status"] == ChunkStatus.CANCELLED
                    lost = Outcome.CANCELLED if cancelled else Outcome.LOST_LEASE
                    attempt = with_outcome(attempt, lost, None)
                attempts.append(attempt_row(attempt))
            s.execute_rows("insert_attempts", attempts)
            finished = {
                r.chunk.queue_id
                for r in reports
                if r.chunk.id in written and r.result.status.terminal
            }
        # After the commit, in a statement of its own: two workers finishing a queue's last two
        # chunks at once would each still see the other's chunk as processing inside their
        # transactions, and neither would complete the queue. The last to commit sees both.
        # Read first: most finishes leave chunks to run, and the update takes SQLite's write
        # lock even to change nothing (a 100,000-message sync: 200 more takings of a lock its
        # writers queue for).
        for queue_id in sorted(finished):
            if self.backend.fetch_one("queue_open_chunk", {"id": queue_id}) is None:
                self.backend.execute("complete_queue_if_done", {"id": queue_id})
        return [r.chunk.id in written for r in reports]

    def release(self, chunk: Chunk, token: str, *, refund: bool) -> bool:
        """Give a chunk back to pending (a graceful stop gives the attempt back)."""
        return chunk.id in self.release_many([(chunk, token)], refund=refund)

    def release_many(self, held: Sequence[tuple[Chunk, str]], *, refund: bool) -> set[str]:
        """Give chunks back to pending in one statement, each fenced by its lease token (a
        stopping worker's unrun chunks); returns the ids of those given back."""
        if not held:
            return set()
        ids = self.backend.list_param([chunk.id for chunk, _ in held])
        tokens = self.backend.list_param(sorted({token for _, token in held}))
        params = {"ids": ids, "tokens": tokens, "refund": 1 if refund else 0}
        with self.backend.transaction() as s:
            return {str(row["id"]) for row in s.fetch_all("release_chunks", params)}

    # --- workers -----------------------------------------------------------------

    def register_worker(self, worker_id: str, host: str, pid: int, concurrency: int) -> None:
        params = {"id": worker_id, "host": host, "pid": pid, "concurrency": concurrency}
        self.backend.execute("register_worker", params)

    def worker_heartbeat(self, worker_id: str, status: str = "running") -> None:
        self.backend.execute("worker_heartbeat", {"id": worker_id, "status": status})

    def worker_stopped(self, worker_id: str) -> None:
        self.backend.execute("worker_stopped", {"id": worker_id})

    def get_worker(self, worker_id: str) -> WorkerInfo:
        row = self.backend.fetch_one("get_worker", {"id": worker_id})
        if row is None:
            raise NotFound(f"no worker with id '{worker_id}'")
        return WorkerInfo.from_row(row)

    def list_workers(self, limit: int = 100) -> list[WorkerInfo]:
        return [
            WorkerInfo.from_row(r) for r in self.backend.fetch_all("list_workers", {"limit": limit})
        ]

    # --- step 1 of the loop: recovery of stuck chunks ------------------------------------------

    def recover_stuck(
        self,
        actor: str,
        policy_for: Any,
        *,
        worker_timeout_s: float = WORKER_TIMEOUT_SECONDS,
        crash_loop_limit: int | None = None,
        limit: int = RECOVER_BATCH,
    ) -> list[Recovery]:
        """Find chunks whose lease expired or whose worker is gone; put each back to pending
        (the attempt stays counted, category timeout) or dead (crash loop, out of attempts).
        `policy_for(queue_id) -> RetryPolicy`. Every recovery is audited."""
        recoveries: list[Recovery] = []
        with self.backend.transaction() as s:
            for row in s.fetch_all("mark_workers_lost", {"worker_timeout_s": worker_timeout_s}):
                self._audit(
                    s,
                    "worker_lost",
                    actor,
                    "no heartbeat",
                    None,
                    None,
                    {"worker_id": row["id"], "timeout_s": worker_timeout_s},
                )
            for row in s.fetch_all("find_stuck", {"limit": limit}):
                chunk = Chunk.from_row(row)
                recovery = self._recover_one(
                    s, chunk, actor, policy_for(chunk.queue_id), crash_loop_limit
                )
                if recovery is not None:
                    recoveries.append(recovery)
        # After the commit, as in finish_many: a queue whose last chunk went dead completes.
        for queue_id in sorted({r.queue_id for r in recoveries if r.to_status.terminal}):
            self.backend.execute("complete_queue_if_done", {"id": queue_id})
        return recoveries

    def _recover_one(
        self,
        s: Session,
        chunk: Chunk,
        actor: str,
        policy: RetryPolicy,
        crash_loop_limit: int | None,
    ) -> Recovery | None:
        crashes = chunk.crash_count + 1
        status, reason = stuck_verdict(
            policy,
            attempts=chunk.attempts,
            max_attempts=chunk.max_attempts,
            crash_count=chunk.crash_count,
            crash_loop_limit=crash_loop_limit,
        )
        message = f"stuck: worker {chunk.worker_id} stopped heartbeating or its lease expired"
        params = {
            "id": chunk.id,
            "token": chunk.lease_token,
            "status": status,
            "delay_s": 0.0,
            "message": message,
            "dead_reason": reason if status is ChunkStatus.DEAD else None,
        }
        if s.execute("recover_chunk", params) != 1:
            return None  # its worker finished it after all, a moment ago
        details = {
            "previous_worker": chunk.worker_id,
            "attempts": chunk.attempts,
            "crash_count": crashes,
            "to": status.value,
            "lease_expires_at": chunk.lease_expires_at,
        }
        self._audit(s, "recover_stuck", actor, reason, chunk.id, chunk.queue_id, details)
        s.execute(
            "insert_attempt",
            {
                "chunk_id": chunk.id,
                "queue_id": chunk.queue_id,
                "tenant": chunk.tenant,
                "worker_id": chunk.worker_id or "unknown",
                "attempt": chunk.attempts,
                "processing_s": 0.0,
                "chunk_size": 0,
                "items_processed": 0,
                "items_per_s": None,
                "efficiency": None,
                "outcome": Outcome.STUCK,
                "category": ErrorCategory.TIMEOUT,
                "rule": "recovery:" + reason,
                "message": message,
                "retry_delay_s": 0.0,
                "rss_bytes": None,
            },
        )
        return Recovery(chunk.id, chunk.queue_id, chunk.worker_id, status, reason)

    # --- audit -----------------------------------------------------------------

    def _audit(
        self,
        s: Session,
        action: str,
        actor: str,
        reason: str,
        chunk_id: str | None,
        queue_id: str | None,
        details: Any = None,
    ) -> None:
        s.execute(
            "insert_audit",
            {
                "action": action,
                "actor": actor,
                "reason": reason,
                "chunk_id": chunk_id,
                "queue_id": queue_id,
                "details": None if details is None else dump_json(details, "detail"),
            },
        )


def _insert_batch(s: Session, placement: Placement, params: Params, batch: list[list[Any]]) -> int:
    """One statement for the batch: [id, seq, payload's JSON, fair_key] a chunk."""
    for row, key in zip(batch, placement.keys(len(batch)), strict=True):
        row.append(finite(key))
    s.execute("insert_chunks", {**params, "batch": rows_json(batch)})
    return len(batch)
