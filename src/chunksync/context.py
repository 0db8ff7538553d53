"""What a handler sees while it processes one chunk: the chunk, its queue, and its lease."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from chunksync.exceptions import LeaseLost
from chunksync.models import Chunk, ErrorCategory, Queue

if TYPE_CHECKING:
    from chunksync.backends.base import Backend
    from chunksync.deps.budget import RetryBudget
    from chunksync.manager import Manager


class ChunkContext:
    """Handed to a handler. `heartbeat()` extends the lease, `save_checkpoint()` records progress
    inside the chunk so that a retry resumes, `signal_stress()` tells the retry budget that the
    dependency pushed back (an IMAP [THROTTLED], say) although the call succeeded."""

    def __init__(
        self,
        *,
        chunk: Chunk,
        queue: Queue,
        lease_token: str,
        manager: Manager,
        lease_s: float,
        budget: RetryBudget,
        deadline: float | None,
        worker_id: str,
    ) -> None:
        self.chunk = chunk
        self.queue = queue
        self.lease_token = lease_token
        self.worker_id = worker_id
        self.deadline = deadline  # time.monotonic() value, or None
        self.items_processed = chunk.items_processed
        self._checkpoint = chunk.checkpoint
        self._manager = manager
        self._lease_s = lease_s
        self._budget = budget
        # Set once by the worker's watchdog or stop(), read by the handler's thread: a plain
        # attribute is enough (one store, atomic), and an Event per chunk cost ~4 us.
        self._cancelled = False

    @property
    def payload(self) -> Any:
        return self.chunk.payload

    @property
    def backend(self) -> Backend:
        """The queue's database, for sources that keep what they sync beside it (mail)."""
        return self._manager.backend

    @property
    def attempt(self) -> int:
        """1 on the first attempt."""
        return self.chunk.attempts

    @property
    def previous_category(self) -> ErrorCategory | None:
        return self.chunk.last_category

    @property
    def checkpoint(self) -> Any:
        """The last checkpoint saved for this chunk (by this attempt or an earlier one)."""
        return self._checkpoint

    @property
    def cancelled(self) -> bool:
        """True once the worker gave up on this attempt (timeout, stop): return soon."""
        return self._cancelled

    def add_items(self, n: int) -> None:
        self.items_processed += n

    def heartbeat(self) -> None:
        """Extend the lease; raises LeaseLost when another owner has the chunk now."""
        self._raise_if_cancelled()
        if not self._manager.heartbeat_chunk(self.chunk.id, self.lease_token, self._lease_s):
            raise LeaseLost(f"lost the lease on chunk {self.chunk.id}")

    def save_checkpoint(self, checkpoint: Any, items_processed: int | None = None) -> None:
        """Record a cursor inside the chunk (JSON) and extend the lease."""
        self._raise_if_cancelled()
        if items_processed is not None:
            self.items_processed = items_processed
        ok = self._manager.heartbeat_chunk(
            self.chunk.id,
            self.lease_token,
            self._lease_s,
            checkpoint=checkpoint,
            items=self.items_processed,
        )
        if not ok:
            raise LeaseLost(f"lost the lease on chunk {self.chunk.id}")
        self._checkpoint = checkpoint

    def signal_stress(self, cost: float = 1.0) -> None:
        self._budget.charge(cost)

    def time_left(self) -> float | None:
        return None if self.deadline is None else self.deadline - time.monotonic()

    def _cancel(self) -> None:
        self._cancelled = True

    def _raise_if_cancelled(self) -> None:
        if self._cancelled:
            raise LeaseLost(f"the worker gave up on chunk {self.chunk.id} (timeout or stop)")
