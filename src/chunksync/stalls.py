"""A stalled worker's return, apart from the Manager's claim-and-finish path: a worker that was
alive but cut off from the database longer than its lease gets back what recovery charged its
chunks meanwhile (chunksync.runtime.recovery.StallClock tells it when). A mixin, like
chunksync.interventions: the Manager supplies the backend and the audit writer.
"""

from __future__ import annotations

import abc
from typing import Any

from chunksync.backends.base import Backend, Session
from chunksync.models import ChunkStatus


class StallAbsolution(abc.ABC):
    backend: Backend

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

    def absolve_stall(self, worker_id: str, window_s: float) -> int:
        """A worker that was alive but cut off from the database for `window_s` is back: the
        chunks recovery took from it meanwhile get back the attempt and the crash they were
        charged (an outage is not a crash), and one that went dead for it runs again. Its late
        results stay fenced out: this touches counts, never leases. Returns how many chunks."""
        message = f"worker {worker_id} was alive but cut off from the database"
        with self.backend.transaction() as s:
            rows = s.fetch_all(
                "absolve_stalled_attempts",
                {"worker_id": worker_id, "window_s": window_s, "message": message},
            )
            # One row per recovery: a chunk recovered twice in the window was charged twice.
            charged = sorted((str(r["chunk_id"]), str(r["queue_id"])) for r in rows)
            chunks = dict(charged)
            reopen = set()
            for chunk_id, queue_id in charged:
                row = s.fetch_one("absolve_stalled_chunk", {"id": chunk_id, "window_s": window_s})
                if row is not None and row["status"] == ChunkStatus.PENDING:
                    reopen.add(queue_id)
            for queue_id in sorted(reopen):
                s.execute("reopen_queue", {"id": queue_id})
            if chunks:
                details = {"worker_id": worker_id, "window_s": window_s, "chunks": len(chunks)}
                self._audit(s, "worker_stalled", "worker", message, None, None, details)
        return len(chunks)
