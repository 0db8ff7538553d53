"""Helper worker processes for one run, so that a CPU-bound sync uses every core.

Python threads share one core (the GIL); a mail sync that parses and stores thousands of messages
a second is CPU-bound, so `chunksync sync` starts helper processes that each run a worker on the
same database until the run's queues finish. They are started with `spawn` (a fresh interpreter
that inherits no socket, lock or database connection of the parent) before planning, so that
their start-up overlaps it; once planned, each is told its work (`Helpers.go`) or to leave
(`Helpers.dismiss`, when there is too little to share). A helper that dies leaves its chunks to
lease recovery, like any worker. No secret crosses: a helper resolves its credentials itself,
from the same environment variable, file or command.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

from chunksync.app import App
from chunksync.worker import FINISHED_QUEUE

log = logging.getLogger("chunksync.processes")

CHECK_SECONDS = 0.2  # how often a helper looks whether the run's queues are finished
POLL_SECONDS = 0.05
JOIN_SECONDS = 10.0  # after the run: how long a helper gets to notice and stop by itself
TERMINATE_SECONDS = 5.0  # then SIGTERM (graceful stop), then SIGKILL
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


@dataclass(frozen=True, slots=True)
class Work:
    """A helper's orders: the queues, its slots, and a setup step run on its App before it works
    (a module-level function or a picklable callable object)."""

    queue_ids: tuple[str, ...]
    slots: int
    setup: Callable[[App], object] | None = None


def finished(app: App, queue_ids: Sequence[str]) -> bool:
    return all(app.manager.get_queue(q).status in FINISHED_QUEUE for q in queue_ids)


class Helpers:
    """`count` helper processes on the database at `url`, waiting for their orders."""

    def __init__(self, url: str, count: int) -> None:
        context = multiprocessing.get_context("spawn")
        self.procs: list[BaseProcess] = []
        self._orders: list[Connection] = []
        for n in range(max(0, count)):
            receive, send = context.Pipe(duplex=False)
            proc = context.Process(
                target=helper_main, args=(url, receive), name=f"chunksync-helper-{n + 1}"
            )
            proc.start()
            receive.close()
            self.procs.append(proc)
            self._orders.append(send)

    def go(self, work: Work, count: int | None = None) -> None:
        """Put `count` helpers (default: all) to work; dismiss the others."""
        keep = len(self.procs) if count is None else max(0, count)
        for n, order in enumerate(self._orders):
            self._send(order, work if n < keep else None)

    def dismiss(self) -> None:
        for order in self._orders:
            self._send(order, None)

    @staticmethod
    def _send(order: Connection, work: Work | None) -> None:
        if order.closed:
            return
        try:
            order.send(work)
        except OSError:  # the helper is gone already
            pass
        order.close()

    def stop(self) -> list[int | None]:
        """Wait for the helpers to stop by themselves, then stop them; their exit codes."""
        self.dismiss()  # those not yet given work
        for proc in self.procs:
            proc.join(JOIN_SECONDS)
        for proc in self.procs:
            if proc.is_alive():
                log.warning("helper %s did not stop by itself: stopping it", proc.name)
                proc.terminate()
                proc.join(TERMINATE_SECONDS)
            if proc.is_alive():
                proc.kill()
                proc.join(TERMINATE_SECONDS)
        return [proc.exitcode for proc in self.procs]


def helper_main(url: str, orders: Connection) -> None:
    """A helper's life: open the database, wait for orders, work until the queues finish."""
    logging.basicConfig(level=logging.WARNING, format=LOG_FORMAT)
    # Ctrl-C reaches the whole process group: the parent decides; at work, the worker's own
    # handler stops this process gracefully.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with App(url) as app:
        try:
            work = orders.recv()
        except (EOFError, OSError):  # the parent went away before giving orders
            return
        finally:
            orders.close()
        if work is None:
            return
        if work.setup is not None:
            work.setup(app)
        worker = app.worker(concurrency=work.slots, poll_s=POLL_SECONDS)
        worker.run(until=lambda: finished(app, work.queue_ids), check_s=CHECK_SECONDS)
