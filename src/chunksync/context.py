"""What a handler sees while it processes one chunk: the chunk, its queue, and its lease."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Protocol

from chunksync.exceptions import LeaseLost, RetryLater
from chunksync.models import Chunk, ErrorCategory, Queue

if TYPE_CHECKING:
    from chunksync.backends.base import Backend
    from chunksync.deps.budget import RetryBudget
    from chunksync.manager import Manager


LIMIT_WAIT_STEP_SECONDS = 0.05  # how often a handler waiting for a slot asks again
SLOT_WAIT_SECONDS = 10.0  # then the chunk is retried later, its own slot freed meanwhile


class DependencyLimits(Protocol):
    """The fleet's limits of the dependencies, as a handler reaches them (the worker's claims,
    chunksync.runtime.claims): known without a round trip whether a dependency has them."""

    def rate_limited(self, dependency: str) -> bool: ...
    def capped(self, dependency: str) -> bool: ...
    def take(self, dependency: str, units: int) -> tuple[int, float]: ...
    def take_slot(self, dependency: str, chunk_id: str, token: str) -> str | None: ...
    def release_slot(self, slot_id: str) -> None: ...


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
        dependency: str | None = None,
        limits: DependencyLimits | None = None,
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
        self.dependency = dependency  # what the queue's source leans on (chunksync.deps)
        self._limits = limits
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
        """The dependency pushed back although the call worked: charge its retry budget."""
        self._budget.charge(cost)

    def take(self, units: int = 1) -> None:
        """Spend `units` of the dependency's rate limit, for the whole fleet, before calls that
        an API prices apart (a chunk's claim took one unit already). Waits as the limit asks,
        within the handler's time; past it, RetryLater. No limit set: returns at once, with no
        database round trip."""
        dep, limits = self.dependency, self._limits
        if dep is None or limits is None or not limits.rate_limited(dep):
            return
        left = units
        while left > 0:
            self._raise_if_cancelled()
            granted, wait_s = limits.take(dep, left)
            left -= granted
            if left:
                self._wait(wait_s, f"the rate limit of {dep}")

    @contextmanager
    def slot(self, wait_s: float = SLOT_WAIT_SECONDS) -> Iterator[None]:
        """One more of the dependency's connection slots, for the whole fleet, while the block
        runs (a handler that opens a second connection). It is held under this chunk's lease:
        if the worker dies, it comes back with the lease. Waits up to `wait_s` (and the
        handler's time) for a free one; then RetryLater, so that chunks which each hold a slot
        and wait for a second one never wait on each other for good (a cap that allows
        `concurrency x connections per chunk` never makes them wait). No cap set: no wait and
        no round trip."""
        dep, limits = self.dependency, self._limits
        if dep is None or limits is None or not limits.capped(dep):
            yield
            return
        give_up = time.monotonic() + wait_s
        while True:
            self._raise_if_cancelled()
            slot_id = limits.take_slot(dep, self.chunk.id, self.lease_token)
            if slot_id is not None:
                break
            if time.monotonic() >= give_up:
                raise RetryLater(f"no free connection slot of {dep} in {wait_s:g} s", delay_s=1.0)
            self._wait(LIMIT_WAIT_STEP_SECONDS, f"a free connection slot of {dep}")
        try:
            yield
        finally:
            limits.release_slot(slot_id)

    def _wait(self, seconds: float, what: str) -> None:
        left = self.time_left()
        if left is not None and left <= seconds:
            raise RetryLater(f"no time left waiting for {what}", delay_s=max(seconds, 1.0))
        time.sleep(max(seconds, 0.001))

    def time_left(self) -> float | None:
        return None if self.deadline is None else self.deadline - time.monotonic()

    def _cancel(self) -> None:
        self._cancelled = True

    def _raise_if_cancelled(self) -> None:
        if self._cancelled:
            raise LeaseLost(f"the worker gave up on chunk {self.chunk.id} (timeout or stop)")
