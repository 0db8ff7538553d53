"""The operator's interventions, each with its audit entry, in one transaction.

Retry, cancel, pause, resume, release and requeue are what a person does to queues, chunks and
workers from the CLI or the dashboard; each checks the state it acts on, refuses with a
`StateError` that says why, and writes its audit entry in the same transaction as its change.

`Interventions` is a mixin of `Manager` rather than a delegate: the interventions are part of
the manager's public API (callers write `manager.retry_chunk(...)`), and a delegate would
repeat every signature in a forwarding method. The mixin declares the little it needs from the
manager (a few reads and the audit writer) as abstract methods, so it imports nothing from
`manager.py`, and `Manager` keeps the persistence the worker's loop and recovery need.
"""

from __future__ import annotations

import abc
from typing import Any

from chunksync.backends.base import Backend, Session, in_transaction
from chunksync.deps import regroup
from chunksync.exceptions import NotFound, StateError
from chunksync.ids import UUID_HEX_DIGITS, uuid_text
from chunksync.models import (
    DEFAULT_TENANT,
    Chunk,
    ChunkStatus,
    ErrorCategory,
    Queue,
    QueueStatus,
    WorkerInfo,
)

OPERATOR = "operator"
HEX = frozenset("0123456789abcdef")
WORKER_TIMEOUT_SECONDS = 60.0  # a worker silent this long is lost


class Interventions(abc.ABC):
    """The operator's side of the manager (mixed into `Manager`)."""

    backend: Backend

    # --- what the interventions need from the manager ---------------------------------------

    @abc.abstractmethod
    def get_queue(self, id_or_name: str, tenant: str = DEFAULT_TENANT) -> Queue:
        """The queue, or NotFound."""

    @abc.abstractmethod
    def get_chunk(self, chunk_id: str) -> Chunk:
        """The chunk, or NotFound."""

    @abc.abstractmethod
    def list_chunks(
        self,
        queue_id: str | None = None,
        status: ChunkStatus | None = None,
        category: ErrorCategory | None = None,
        limit: int = 100,
    ) -> list[Chunk]:
        """A queue's chunks in one status."""

    @abc.abstractmethod
    def get_worker(self, worker_id: str) -> WorkerInfo:
        """The worker, or NotFound."""

    @abc.abstractmethod
    def now(self) -> float:
        """The database clock."""

    @abc.abstractmethod
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
        """Write one audit entry inside the transaction of the change it records."""

    def chunk_ids_with_prefix(self, prefix: str, limit: int) -> list[str]:
        """Up to `limit` ids of chunks that start with `prefix` (hex digits, hyphens optional),
        found by a range over the primary key rather than a scan."""
        digits = prefix.replace("-", "").lower()
        if not digits or len(digits) > UUID_HEX_DIGITS or not all(c in HEX for c in digits):
            return []
        lo, hi = (uuid_text(digits.ljust(UUID_HEX_DIGITS, pad)) for pad in "0f")
        rows = self.backend.fetch_all("chunk_ids_in_range", {"lo": lo, "hi": hi, "limit": limit})
        return [str(r["id"]) for r in rows]

    # --- the interventions ------------------------------------------------------------------
    def retry_chunk(
        self, chunk_id: str, actor: str = OPERATOR, reason: str = "manual retry"
    ) -> Chunk:
        chunk = self.get_chunk(chunk_id)

        def revive(s: Session) -> None:  # a chunk, then its queue (see in_transaction)
            if s.execute("revive_chunk", {"id": chunk.id}) != 1:
                now = self.get_chunk(chunk.id).status
                raise StateError(f"chunk {chunk.id} is {now}: only a dead chunk can be retried")
            s.execute("reopen_queue", {"id": chunk.queue_id})
            self._audit(
                s,
                "retry_chunk",
                actor,
                reason,
                chunk.id,
                chunk.queue_id,
                {"was": chunk.dead_reason, "attempts": chunk.attempts},
            )

        in_transaction(self.backend, revive)
        return self.get_chunk(chunk.id)

    def retry_queue(
        self, queue_id: str, actor: str = OPERATOR, reason: str = "manual retry"
    ) -> int:
        queue = self.get_queue(queue_id)
        dead = self.list_chunks(queue.id, ChunkStatus.DEAD, limit=10_000_000)
        if not dead:
            raise StateError(f"queue {queue.name} has no dead chunks to retry")
        if queue.status is QueueStatus.CANCELLED:
            raise StateError(f"queue {queue.name} is cancelled: its chunks cannot be retried")

        def revive(s: Session) -> int:  # chunks, then their queue (see in_transaction)
            revived = 0
            for chunk in dead:
                if s.execute("revive_chunk", {"id": chunk.id}) == 1:
                    revived += 1
                    self._audit(
                        s,
                        "retry_chunk",
                        actor,
                        reason,
                        chunk.id,
                        queue.id,
                        {"was": chunk.dead_reason, "attempts": chunk.attempts},
                    )
            s.execute("reopen_queue", {"id": queue.id})
            return revived

        return in_transaction(self.backend, revive)

    def cancel_chunk(
        self, chunk_id: str, actor: str = OPERATOR, reason: str = "manual cancel"
    ) -> Chunk:
        chunk = self.get_chunk(chunk_id)

        def cancel(s: Session) -> None:  # a chunk, then its queue (see in_transaction)
            if s.execute("cancel_chunk", {"id": chunk.id}) != 1:
                raise StateError(
                    f"chunk {chunk.id} is already {chunk.status}: it cannot be cancelled"
                )
            self._audit(
                s,
                "cancel_chunk",
                actor,
                reason,
                chunk.id,
                chunk.queue_id,
                {"was": chunk.status.value, "worker_id": chunk.worker_id},
            )
            s.execute("complete_queue_if_done", {"id": chunk.queue_id})

        in_transaction(self.backend, cancel)
        return self.get_chunk(chunk.id)

    def cancel_queue(
        self, queue_id: str, actor: str = OPERATOR, reason: str = "manual cancel"
    ) -> int:
        queue = self.get_queue(queue_id)
        allowed = [QueueStatus.ACTIVE, QueueStatus.PAUSED]
        with self.backend.transaction() as s:
            if not self._set_status(s, queue.id, QueueStatus.CANCELLED, allowed):
                raise StateError(f"queue {queue.name} is {queue.status}: it cannot be cancelled")
            cancelled = s.execute("cancel_queue_chunks", {"queue_id": queue.id})
            self._audit(s, "cancel_queue", actor, reason, None, queue.id, {"chunks": cancelled})
        return cancelled

    def pause_queue(
        self,
        queue_id: str,
        actor: str = OPERATOR,
        reason: str = "manual pause",
        *,
        move_s: float | None = regroup.REGROUP_TURN_S,
    ) -> Queue:
        """Pause a queue: no claim takes its chunks from now on. On PostgreSQL its open chunks
        then move to the paused claim group, which no claim reads past, for up to `move_s`
        (None: all of them; 0: none); a maintenance leader goes on with the rest."""
        queue = self._move_queue(
            queue_id, QueueStatus.PAUSED, [QueueStatus.ACTIVE], "pause_queue", actor, reason
        )
        if move_s != 0:
            regroup.move_queue(self.backend, queue.id, budget_s=move_s)
        return queue

    def resume_queue(
        self,
        queue_id: str,
        actor: str = OPERATOR,
        reason: str = "manual resume",
        *,
        move_s: float | None = regroup.REGROUP_TURN_S,
    ) -> Queue:
        """Resume a paused queue. On PostgreSQL its chunks move back to the claim group its
        dependency calls for, in order, claimable as each batch commits, for up to `move_s`
        (None: all of them; 0: none); a maintenance leader goes on with the rest."""
        queue = self._move_queue(
            queue_id, QueueStatus.ACTIVE, [QueueStatus.PAUSED], "resume_queue", actor, reason
        )
        if move_s != 0:
            regroup.move_queue(self.backend, queue.id, budget_s=move_s)
        self.backend.execute("complete_queue_if_done", {"id": queue.id})
        return self.get_queue(queue.id)

    def _move_queue(
        self,
        queue_id: str,
        to: QueueStatus,
        allowed: list[QueueStatus],
        action: str,
        actor: str,
        reason: str,
    ) -> Queue:
        queue = self.get_queue(queue_id)
        with self.backend.transaction() as s:
            if not self._set_status(s, queue.id, to, allowed):
                raise StateError(
                    f"queue {queue.name} is {queue.status}: only a queue that is "
                    f"{' or '.join(allowed)} can be moved to {to}"
                )
            self._audit(s, action, actor, reason, None, queue.id, {"was": queue.status.value})
        return self.get_queue(queue.id)

    def _set_status(
        self, s: Session, queue_id: str, to: QueueStatus, allowed: list[QueueStatus]
    ) -> bool:
        params = {"id": queue_id, "status": to, "allowed": self.backend.list_param(allowed)}
        return s.execute("set_queue_status", params) == 1

    def release_chunk(
        self,
        chunk_id: str,
        actor: str = OPERATOR,
        reason: str = "manual release",
        *,
        force: bool = False,
        alive_within_s: float = WORKER_TIMEOUT_SECONDS,
    ) -> Chunk:
        """Force a processing chunk back to pending; the attempt it was on stays counted.
        Refuses while the worker running it looks alive (its handler would go on running and
        the chunk could run twice), as `requeue_worker` does, unless `force`."""
        chunk = self.get_chunk(chunk_id)
        if not force and chunk.worker_id and chunk.status is ChunkStatus.PROCESSING:
            self._refuse_if_alive(
                chunk.worker_id, alive_within_s, f"chunk {chunk.id} is running on"
            )
        with self.backend.transaction() as s:
            if s.execute("release_chunk", {"id": chunk.id, "token": None, "refund": 0}) != 1:
                raise StateError(
                    f"chunk {chunk.id} is {chunk.status}: only a processing chunk can be released"
                )
            self._audit(
                s,
                "release_chunk",
                actor,
                reason,
                chunk.id,
                chunk.queue_id,
                {"worker_id": chunk.worker_id, "attempts": chunk.attempts},
            )
        return self.get_chunk(chunk.id)

    def requeue_worker(
        self,
        worker_id: str,
        actor: str = OPERATOR,
        reason: str = "worker is dead",
        *,
        force: bool = False,
        alive_within_s: float = WORKER_TIMEOUT_SECONDS,
    ) -> int:
        """Release every chunk a dead worker holds. Refuses while the worker looks alive."""
        self.get_worker(worker_id)
        if not force:
            self._refuse_if_alive(worker_id, alive_within_s, "")
        released = 0
        with self.backend.transaction() as s:
            for row in s.fetch_all("chunks_of_worker", {"worker_id": worker_id}):
                if s.execute("release_chunk", {"id": row["id"], "token": None, "refund": 0}) == 1:
                    released += 1
                    self._audit(
                        s,
                        "release_chunk",
                        actor,
                        reason,
                        str(row["id"]),
                        str(row["queue_id"]),
                        {"worker_id": worker_id},
                    )
        return released

    def _refuse_if_alive(self, worker_id: str, alive_within_s: float, what: str) -> None:
        try:
            worker = self.get_worker(worker_id)
        except NotFound:
            return  # a worker that never registered, or whose row retention removed
        silent_s = self.now() - worker.last_heartbeat_at
        if worker.status.value == "running" and silent_s < alive_within_s:
            subject = f"{what} worker {worker_id}, which" if what else f"worker {worker_id}"
            raise StateError(
                f"{subject} is alive (last heartbeat {silent_s:.0f} s ago): "
                "stop it first, or pass --force"
            )
