"""A worker's heartbeat, on a thread of its own: the worker's row and its chunks' leases kept
alive, and, back after an outage longer than the lease, the attempts recovery charged given back
(chunksync.runtime.recovery says when and why)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

from chunksync.exceptions import BackendError
from chunksync.manager import Manager
from chunksync.redact import redact
from chunksync.runtime.recovery import StallClock

log = logging.getLogger("chunksync.runtime.heartbeat")


class Heartbeat:
    """Every third of the lease (at most 5 s, at least 50 ms) until `stopped`: the worker's
    status ("stopping" once `stopping` is set) and the leases `leases()` lists (chunk id, token)."""

    def __init__(
        self,
        manager: Manager,
        worker_id: str,
        lease_s: float,
        leases: Callable[[], Sequence[tuple[str, str]]],
        stopping: threading.Event,
        stopped: threading.Event,
    ) -> None:
        self.manager, self.worker_id, self.lease_s = manager, worker_id, lease_s
        self._leases, self._stopping, self._stopped = leases, stopping, stopped

    def run(self) -> None:
        interval = max(0.05, min(self.lease_s / 3.0, 5.0))
        clock = StallClock(self.lease_s, time.monotonic())
        while not self._stopped.wait(interval):
            started = time.monotonic()
            try:
                status = "stopping" if self._stopping.is_set() else "running"
                self.manager.worker_heartbeat(self.worker_id, status)
                self.manager.extend_leases(self.worker_id, self._leases(), self.lease_s)
            except BackendError as exc:
                clock.failed()
                log.error("heartbeat failed: %s", redact(str(exc)))
                continue
            outage = clock.answered(started, time.monotonic())
            if outage is not None:
                self.absolve_stall(outage + interval)

    def absolve_stall(self, window_s: float) -> None:
        """Back after an outage longer than the lease: recovery took this worker's chunks as
        if it had died; give back what that charged (runtime/recovery.py says why)."""
        try:
            n = self.manager.absolve_stall(self.worker_id, window_s)
        except BackendError as exc:
            log.error("could not give back the attempts of a stall: %s", redact(str(exc)))
            return
        log.warning(
            "worker %s was cut off from the database for %.1f s: %d chunk(s) recovered "
            "meanwhile get their attempt back",
            self.worker_id,
            window_s,
            n,
        )
