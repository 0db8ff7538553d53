"""A run until done: how far the queues are while it runs, and what it came to.

`Worker.run_until_done()` asks a `Tracker` whether its queues are all terminal (the same
question it always asked, one read of each queue); the tracker hands each answer's figures to
a listener, which the CLI turns into a progress bar on a terminal (`bar`). The run ends with a
`RunSummary`: what the worker did, and where each queue stands.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from chunksync.exceptions import BackendBusy, BackendError, BackendUnavailable
from chunksync.manager import Manager
from chunksync.models import ChunkStatus, Queue, QueueStatus

if TYPE_CHECKING:
    from rich.console import Console

# How often run_until_done looks: a read of each queue's row, so that it returns within 20 ms of
# the last chunk (at 0.2 s, a 20,000-chunk SQLite drain of ~1 s measured up to a fifth longer);
# with a listener each look counts the queues' chunks, so less often.
CHECK_SECONDS = 0.02
COUNTING_CHECK_SECONDS = 0.2
ONE_BY_ONE = 100  # more queues than this: their outcomes from one read of every queue
SHOWN_DEAD = 10  # queues with dead chunks named in a summary's text
FINISHED_QUEUE = frozenset({QueueStatus.COMPLETED, QueueStatus.FAILED, QueueStatus.CANCELLED})
# A check that finds the database so is no answer: the workers ride it out; so does the wait.
AWAY = (BackendUnavailable, BackendBusy)

Listener = Callable[[int, int], None]  # (chunks terminal, chunks in all)


@dataclass(frozen=True, slots=True)
class QueueOutcome:
    id: str
    name: str
    status: str
    totals: dict[str, int]

    @classmethod
    def of(cls, queue: Queue) -> QueueOutcome:
        totals = {s.value: queue.totals.get(s, 0) for s in ChunkStatus}
        return cls(queue.id, queue.name, queue.status.value, totals)


@dataclass(frozen=True, slots=True)
class RunSummary:
    """What `run_until_done()` came to; `finished` is False when it timed out or was stopped."""

    worker_id: str
    finished: bool
    elapsed_s: float
    chunks_run: int  # attempts this worker ran (a retried chunk counts each time)
    recoveries: int
    queues: tuple[QueueOutcome, ...] = field(default=())

    def total(self, status: ChunkStatus) -> int:
        return sum(q.totals.get(status.value, 0) for q in self.queues)

    def as_dict(self) -> dict[str, Any]:
        return {
            "worker_id": self.worker_id,
            "finished": self.finished,
            "elapsed_s": round(self.elapsed_s, 3),
            "chunks_run": self.chunks_run,
            "recoveries": self.recoveries,
            "totals": {s.value: self.total(s) for s in ChunkStatus},
            "queues": [
                {"id": q.id, "name": q.name, "status": q.status, "totals": q.totals}
                for q in self.queues
            ],
        }

    def text(self) -> str:
        """The few lines a person reads at the end of a run."""
        head = "done" if self.finished else "stopped before the queues finished"
        totals = ", ".join(f"{self.total(s)} {s.value}" for s in ChunkStatus if self.total(s))
        queues = f"{len(self.queues)} queue(s)"
        lines = [
            f"{head} in {self.elapsed_s:.1f} s: {queues}, {totals or 'no chunks'}",
            f"this worker ran {self.chunks_run} attempt(s), recovered {self.recoveries} chunk(s)",
        ]
        dead = [q for q in self.queues if q.totals.get(ChunkStatus.DEAD.value)]
        for q in dead[:SHOWN_DEAD]:
            lines.append(
                f"queue {q.name}: {q.totals['dead']} dead "
                f"('chunksync chunks --status dead' lists them)"
            )
        if len(dead) > SHOWN_DEAD:
            lines.append(f"and {len(dead) - SHOWN_DEAD:,} more queue(s) with dead chunks")
        return "\n".join(lines)


def queues_finished(manager: Manager, queue_ids: Sequence[str]) -> bool:
    """Whether every named queue is terminal, reading up to the first that is not (a sync's
    processes ask every few ms); not while the database is away or busy."""
    try:
        return all(manager.queue_row(q).status in FINISHED_QUEUE for q in queue_ids)
    except AWAY:
        return False


class Tracker:
    """Says at each check whether the queues are all terminal, reading them up to the first
    that is not (from where the last check stopped: a queue that finished seldom reopens, and
    when all have been seen finished they are all read once more), and tells the listener how
    many of their chunks are, counted at most a tenth of the time (`worker --until-done` over
    50,000 queues read every queue's row every 20 ms)."""

    def __init__(
        self, manager: Manager, queue_ids: Sequence[str], listener: Listener | None = None
    ) -> None:
        self.manager = manager
        self.queue_ids = list(queue_ids)
        self.listener = listener
        self.last: list[Queue] = []
        self.check_s = CHECK_SECONDS if listener is None else COUNTING_CHECK_SECONDS
        self._next = 0  # the queues before it were finished when last read
        self._count_due = 0.0

    def finished(self) -> bool:
        try:
            if self.listener is not None and time.monotonic() >= self._count_due:
                return self._counted()
            return self._read_on()
        except AWAY:
            return False

    def _read_on(self) -> bool:
        ids, read = self.queue_ids, self.manager.queue_row
        while self._next < len(ids):
            if read(ids[self._next]).status not in FINISHED_QUEUE:
                return False
            self._next += 1
        self.last = [read(q) for q in ids]  # what outcomes() falls back on, the database away
        if all(q.status in FINISHED_QUEUE for q in self.last):
            return True
        self._next = 0  # one reopened (a dead chunk retried): from the start again
        return False

    def _counted(self) -> bool:
        """Every queue with its totals, for the listener (counting a large queue's chunks at
        every check cost a drain a tenth of a second each time)."""
        began = time.monotonic()
        self.last = [self.manager.get_queue(q) for q in self.queue_ids]
        self._count_due = time.monotonic() + 9 * (time.monotonic() - began)
        assert self.listener is not None
        self.listener(sum(q.done for q in self.last), sum(q.total for q in self.last))
        return all(q.status in FINISHED_QUEUE for q in self.last)

    def outcomes(self) -> tuple[QueueOutcome, ...]:
        """Where each queue stands now (read afresh: the last check may be a moment old; the
        last check's figures when the database cannot answer now)."""
        try:
            if len(self.queue_ids) > ONE_BY_ONE:  # one read of them all (each: a statement)
                wanted = set(self.queue_ids)
                queues = [q for q in self.manager.list_queues() if q.id in wanted]
            else:
                queues = [self.manager.get_queue(q) for q in self.queue_ids]
        except BackendError:
            queues = self.last
        return tuple(QueueOutcome.of(q) for q in queues)


@contextmanager
def bar(console: Console, *, enabled: bool) -> Iterator[Listener | None]:
    """A Rich progress bar of chunks done, as a listener; None when not `enabled` (output
    that is not a terminal gets only the summary)."""
    if not enabled:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (
        TextColumn("chunks"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("chunks", total=None)

        def update(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total or None)

        yield update
