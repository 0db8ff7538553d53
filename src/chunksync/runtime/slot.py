"""A worker's slot: one thread that claims a batch of chunks, runs them one by one and has
their results written, growing its batch while chunks are quick.

The steps themselves are the worker's (chunksync.runtime.worker, `SlotSteps`): this module is
the loop around them and the state a slot shares with the watchdog (chunksync.runtime.watchdog).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from chunksync.deps.store import Special
from chunksync.exceptions import BackendError
from chunksync.models import Chunk, Outcome
from chunksync.observe.model import FAILED_OUTCOMES
from chunksync.redact import redact
from chunksync.results import Report

if TYPE_CHECKING:
    from chunksync.context import ChunkContext
    from chunksync.deps.budget import RetryBudget

log = logging.getLogger("chunksync.runtime.worker")

BACKEND_ERROR_PAUSE_SECONDS = 1.0
REPORT_FLUSH_SECONDS = 0.1  # results of a claimed batch wait at most this long to be written
QUICK_CHUNK_SECONDS = 0.01  # chunks quicker than this are claimed in growing batches
BATCH_GROWTH_SECONDS = 0.25  # ... while a whole batch takes less than this (no hoarding)


@dataclass(slots=True)
class InFlight:
    """A claimed chunk, from its claim until its result is written (or it is released)."""

    chunk: Chunk
    token: str
    ctx: ChunkContext | None = None
    probe: bool = False  # claimed as its dependency's probe (the fleet's one per interval)
    not_before: float = 0.0  # monotonic: when its reserved rate unit falls due
    spacing: float = 0.0  # at least this long after the slot's previous paced call


class InFlightTable:
    """The chunks a worker holds, from their claim until their result is written or they are
    given back: what its heartbeat extends, and what its stop gives back. Once the stop has
    taken them (`close`), a claim that returns later is refused (`hold` is False), so that its
    caller gives its chunks back rather than leaving them leased until recovery."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[str, InFlight] = {}  # one claim of one chunk: token + chunk id
        self._closed = False

    def hold(self, items: list[InFlight]) -> bool:
        with self._lock:
            if self._closed:
                return False
            for item in items:
                self._items[item.token + item.chunk.id] = item
            return True

    def drop(self, items: Iterable[InFlight]) -> None:
        with self._lock:
            for item in items:
                self._items.pop(item.token + item.chunk.id, None)

    def close(self) -> list[InFlight]:
        """Every chunk still held, and no more holding from now on."""
        with self._lock:
            self._closed = True
            items, self._items = list(self._items.values()), {}
            return items

    def leases(self) -> list[tuple[str, str]]:
        with self._lock:
            return [(i.chunk.id, i.token) for i in self._items.values()]


@dataclass(slots=True)
class Running:
    """The chunk a slot's handler runs now, with what the watchdog needs to time it out."""

    item: InFlight
    ctx: ChunkContext
    budget: RetryBudget
    started: float
    deadline: float | None
    size: int
    probe: bool


Reports = list[tuple[InFlight, Report]]


class Slot:
    """One slot's claimed batch, its results not yet written and the chunk it runs now: shared
    by the slot's thread and the watchdog, under `lock`."""

    def __init__(self, thread: threading.Thread) -> None:
        self.thread = thread
        self.lock = threading.Lock()
        self.items: deque[InFlight] = deque()
        self.reports: Reports = []
        self.running: Running | None = None
        self.abandoned = False
        self.paced_at = -1e18  # monotonic: when this slot last made a rate-paced call


class SlotSteps(Protocol):
    """The worker's steps, as a slot's loop calls them (see chunksync.runtime.worker)."""

    def _step1_precheck(self) -> dict[str, Special]: ...
    def _step2_claim(self, batch: int, special: dict[str, Special]) -> list[InFlight]: ...
    def _run_one(self, item: InFlight, slot: Slot) -> Report | None: ...  # steps 3 to 6
    def _step7_report(self, reports: Reports) -> None: ...
    def _idle_wait_s(self) -> float: ...


def next_batch(batch: int, elapsed_s: float, claimed: int, max_batch: int) -> int:
    """Claim more at once only while chunks take under QUICK_CHUNK_SECONDS each and the
    batch under BATCH_GROWTH_SECONDS: each claim and commit is shared by more chunks, and
    a slot never holds more than about half a second of work that others could run."""
    quick = claimed and elapsed_s / claimed < QUICK_CHUNK_SECONDS
    if quick and claimed == batch and elapsed_s < BATCH_GROWTH_SECONDS:
        return min(batch * 2, max_batch)
    return 1 if claimed and elapsed_s / claimed >= QUICK_CHUNK_SECONDS else batch


def work(
    slot: Slot,
    steps: SlotSteps,
    *,
    stopping: threading.Event,
    wake: threading.Event,
    max_batch: int,
) -> None:
    """Claim and run batches until the worker stops or the watchdog abandons this slot."""
    batch = 1  # grows while chunks are quick, back to 1 when one is slow
    while not stopping.is_set():
        try:
            claimed = steps._step2_claim(batch, steps._step1_precheck())
        except BackendError as exc:
            log.error(
                "database error, retrying in %.0f s: %s",
                BACKEND_ERROR_PAUSE_SECONDS,
                redact(str(exc)),
            )
            stopping.wait(BACKEND_ERROR_PAUSE_SECONDS)
            continue
        if not claimed:
            wake.wait(steps._idle_wait_s())
            wake.clear()
            continue
        began = time.monotonic()
        ran = _run_batch(slot, steps, claimed, stopping)
        if ran is None:
            return
        held, failed, waited = ran
        # A held chunk is instant but no sign of quick work: its gate just shut. Nor is a batch
        # that mostly failed fast (its dependency is likely down): grown on that, a slot would
        # pile chunks up behind one handler, all found stuck together if its worker dies.
        if held or failed * 2 > len(claimed):
            batch = 1
        else:
            # Time spent waiting for reserved rate units is the limit's pace, not the chunks'.
            elapsed = time.monotonic() - began - waited
            batch = next_batch(batch, elapsed, len(claimed), max_batch)


def _run_batch(
    slot: Slot, steps: SlotSteps, claimed: list[InFlight], stopping: threading.Event
) -> tuple[bool, int, float] | None:
    """Run a claimed batch, its results written at most REPORT_FLUSH_SECONDS after they end.
    Returns whether a chunk was held, how many failed and the seconds spent waiting for
    reserved rate units; None once the slot is abandoned."""
    first_unwritten, held, failed, waited = 0.0, False, 0, 0.0
    with slot.lock:
        slot.items.extend(claimed)
    while True:
        with slot.lock:
            if slot.abandoned:
                return None
            if stopping.is_set() or not slot.items:
                break  # the rest is released by stop(), attempts given back
            item = slot.items.popleft()
        # A rate-limited claim reserved each chunk's unit for its own moment, and a slot keeps
        # its own pace: one that fell behind never catches up by bunching its calls.
        early = max(item.not_before, slot.paced_at + item.spacing) - time.monotonic()
        if early > 0:
            waited += early
            if stopping.wait(early):
                break  # released by stop(), its attempt given back
        if item.spacing:
            slot.paced_at = time.monotonic()
        report = steps._run_one(item, slot)
        now = time.monotonic()
        with slot.lock:
            if slot.abandoned:
                return None  # the watchdog recorded this chunk's timeout: this result is void
            if report is not None:
                first_unwritten = first_unwritten or now
                slot.reports.append((item, report))
                outcome = report.result.outcome
                held = held or outcome is Outcome.HELD
                failed += outcome in FAILED_OUTCOMES
            due = now - first_unwritten >= REPORT_FLUSH_SECONDS
            if due:
                reports, slot.reports = slot.reports, []
        if due and reports:
            steps._step7_report(reports)
            first_unwritten = 0.0
    with slot.lock:
        reports, slot.reports = slot.reports, []
    steps._step7_report(reports)
    return held, failed, waited
