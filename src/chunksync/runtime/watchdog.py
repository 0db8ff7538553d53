"""Handler timeouts: the watchdog thread of a worker.

Python cannot stop a thread, so a handler past its timeout is abandoned on its thread: its
context is cancelled (its heartbeats and checkpoints raise), its chunk recorded as a timeout,
the rest of its slot's batch released (attempts given back), and a fresh slot thread takes the
slot's place. Whatever the abandoned handler does later is void: its lease token no longer
matches.

Also here, `StopReport`: a stop that takes long says what it is waiting for.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

from chunksync.exceptions import BackendError
from chunksync.redact import redact
from chunksync.results import Report
from chunksync.runtime.slot import InFlight, Reports, Running, Slot

log = logging.getLogger("chunksync.runtime.worker")

WATCH_SECONDS = 0.05  # how often the watchdog looks for handlers past their timeout
STOP_REPORT_SECONDS = 10.0  # a stop still going after this says what it waits for, and again
ABANDONED = TimeoutError("abandoned by the watchdog")  # a marker, never raised


class Watched(Protocol):
    """What the watchdog needs of its worker (chunksync.runtime.worker.Worker)."""

    def _live_slots(self) -> list[Slot]: ...
    def _retire_slot(self, slot: Slot) -> None: ...
    def _conclude(self, running: Running, error: BaseException | None) -> Report: ...
    def _step7_report(self, reports: Reports) -> None: ...
    def _release(self, items: list[InFlight]) -> None: ...
    def _replace_slot(self) -> None: ...


class Watchdog:
    """Looks every WATCH_SECONDS for a handler past `timeout_s` and abandons its slot."""

    def __init__(self, worker: Watched, timeout_s: float, stopped: threading.Event) -> None:
        self.worker = worker
        self.timeout_s = timeout_s
        self._stopped = stopped

    def run(self) -> None:
        """Until the worker has stopped (a thread's target)."""
        while not self._stopped.wait(WATCH_SECONDS):
            now = time.monotonic()
            for slot in self.worker._live_slots():
                with slot.lock:
                    running = slot.running
                    if slot.abandoned or running is None or running.deadline is None:
                        continue
                    if now < running.deadline:
                        continue
                    slot.abandoned = True
                    rest, slot.items = list(slot.items), deque()
                    reports, slot.reports = slot.reports, []
                try:
                    self._abandon(slot, running, rest, reports)
                except Exception:  # the watchdog must outlive any one chunk's trouble
                    log.exception("chunk %s: could not time it out", running.item.chunk.id)

    def _abandon(
        self, slot: Slot, running: Running, rest: list[InFlight], reports: Reports
    ) -> None:
        """Record the running chunk as a timeout with the slot's unwritten results, release the
        rest of its batch and start a fresh slot in its place."""
        worker = self.worker
        worker._retire_slot(slot)
        running.ctx._cancel()
        error = TimeoutError(f"handler ran past its timeout of {self.timeout_s:g} s")
        item = running.item
        try:
            reports.append((item, worker._conclude(running, error)))
        except BackendError as exc:
            log.error("chunk %s: database error: %s", item.chunk.id, redact(str(exc)))
        worker._step7_report(reports)
        worker._release(rest)
        worker._replace_slot()


class StopReport:
    """What a worker's stop is waiting for (`waiting`, set by each of its steps). A stop still
    going after STOP_REPORT_SECONDS logs it, with every thread's stack, and again at each such
    interval: a supervisor's kill comes soon after, and its log line is all that is left."""

    def __init__(self, worker_id: str) -> None:
        self.worker_id = worker_id
        self.waiting = "the stop to begin"

    @contextmanager
    def watched(self, every_s: float | None = None) -> Iterator[None]:
        every = STOP_REPORT_SECONDS if every_s is None else every_s
        done, began = threading.Event(), time.monotonic()

        def report() -> None:
            while not done.wait(every):
                log.warning(
                    "worker %s: still stopping after %.0f s, waiting for %s; its threads:\n%s",
                    self.worker_id, time.monotonic() - began, self.waiting, thread_stacks(),
                )  # fmt: skip

        reporter = threading.Thread(target=report, name=f"{self.worker_id}-stop", daemon=True)
        reporter.start()
        try:
            yield
        finally:
            done.set()


def thread_stacks() -> str:
    """Every live thread's stack, innermost call last (code lines only: no values)."""
    frames = sys._current_frames()
    parts = [
        f"--- thread {t.name}\n" + "".join(traceback.format_stack(frames[t.ident]))
        for t in threading.enumerate()
        if t.ident in frames and t is not threading.current_thread()
    ]
    return "".join(parts)
