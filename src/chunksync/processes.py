"""Helper worker processes for one run, so that a CPU-bound sync uses every core.

Python threads share one core (the GIL); a mail sync that parses and stores thousands of messages
a second is CPU-bound, so `chunksync sync` starts helper processes that each run a worker on the
same database until the run's queues finish. Each is a fresh interpreter (`python -m
chunksync.processes`: it inherits no socket, lock or database connection of the parent),
started before planning so that its start-up overlaps it; it reads the database URL, then its orders
(`Helpers.go`) or nothing (`Helpers.dismiss`, when there is too little to share), pickled through
its standard input: a URL may hold a password, which argv would show to every user. A helper that
dies leaves its chunks to lease recovery, like any worker. No other secret crosses: a helper
resolves its credentials itself, from the same environment variable, file or command.

Earlier still: the `chunksync` command calls `prestart` before the CLI's own imports, so a sync's
helpers import the engine on the other cores while this process imports it too (~0.2 s each;
a tenth of a 10,000-message sync). `Helpers` adopts them; those it does not need are stopped.
This module therefore imports nothing of the engine at its top.
"""

from __future__ import annotations

import atexit
import gc
import logging
import os
import pickle
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chunksync.app import App

log = logging.getLogger("chunksync.processes")

CHECK_SECONDS = 0.05  # how often a helper looks whether the run's queues are finished
SWITCH_INTERVAL_S = 0.0005  # see tune_interpreter
GC_YOUNG_THRESHOLD = 10_000  # see tune_interpreter
POLL_SECONDS = 0.05
JOIN_SECONDS = 10.0  # after the run: how long a helper gets to notice and stop by itself
TERMINATE_SECONDS = 5.0  # then SIGTERM (graceful stop), then SIGKILL
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
GLOBAL_OPTIONS_WITH_VALUES = ("--db", "--app", "--config")  # the CLI's options before its command

_waiting: list[subprocess.Popen[bytes]] = []  # started by prestart, not yet adopted


@dataclass(frozen=True, slots=True)
class Work:
    """A helper's orders: the queues, its slots, and a setup step run on its App before it works
    (a module-level function or a picklable callable object)."""

    queue_ids: tuple[str, ...]
    slots: int
    setup: Callable[[App], object] | None = None


class Helpers:
    """`count` helper processes on the database at `url`, waiting for their orders."""

    def __init__(self, url: str, count: int) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []
        self._working: set[int] = set()
        self._url = url
        self.add(count)
        _stop_waiting()  # prestarted beyond what this run may use

    def add(self, count: int) -> None:
        """`count` helpers more: prestarted ones first, then new ones (started now, they join
        the work once they have imported the engine)."""
        for _ in range(max(0, count)):
            proc = _waiting.pop(0) if _waiting else _spawn()
            assert proc.stdin is not None
            # The URL goes through the pipe, not argv: it may hold a password.
            try:
                pickle.dump(self._url, proc.stdin)
                proc.stdin.flush()
            except OSError:  # it died at once; its share of the work stays with the others
                pass
            self.procs.append(proc)

    def go(self, work: Work, count: int | None = None) -> None:
        """Put `count` helpers (default: all) to work; dismiss the others."""
        keep = len(self.procs) if count is None else max(0, count)
        for n, proc in enumerate(self.procs):
            self._send(proc, work if n < keep else None)
            if n < keep:
                self._working.add(proc.pid)

    def dismiss(self) -> None:
        for proc in self.procs:
            self._send(proc, None)

    @staticmethod
    def _send(proc: subprocess.Popen[bytes], work: Work | None) -> None:
        orders = proc.stdin
        if orders is None or orders.closed:
            return
        try:
            orders.write(pickle.dumps(work))  # our own process, our own classes
            orders.close()
        except OSError:  # the helper is gone already
            pass

    def stop(self) -> list[int | None]:
        """Wait for the helpers to stop by themselves, then stop them; their exit codes."""
        self.dismiss()  # those not yet given work
        for proc in self.procs:
            if proc.pid not in self._working:
                proc.terminate()  # it did nothing: no need to wait for its start-up to end
        for proc in self.procs:
            _wait(proc, JOIN_SECONDS)
        for proc in self.procs:
            if proc.poll() is None:
                log.warning("helper %d did not stop by itself: stopping it", proc.pid)
                proc.terminate()
                _wait(proc, TERMINATE_SECONDS)
            if proc.poll() is None:
                proc.kill()
                _wait(proc, TERMINATE_SECONDS)
        codes = [proc.returncode for proc in self.procs]
        for proc, code in zip(self.procs, codes, strict=True):
            if proc.pid in self._working and code not in (0, None):
                log.warning(
                    "helper %d exited with status %s: chunks it held return by lease recovery",
                    proc.pid,
                    code,
                )
        return codes


def prestart(argv: Sequence[str]) -> None:
    """Called with the command line before the CLI's imports: for `chunksync sync`, start the
    helpers it will most likely want (one per core but this one, or `--processes` - 1)."""
    count = helpers_wanted(argv)
    if count > 0:
        atexit.register(_stop_waiting)  # the command failed before adopting them
        _waiting.extend(_spawn() for _ in range(count))


def tune_interpreter() -> None:
    """Chunksync's own processes (the CLI, a sync's helpers), tuned for their work:

    - the GIL handed over every 0.5 ms rather than Python's 5 ms. A slot that lets go of the GIL
      for a moment (a SHA-256, a socket read, each statement of a store write) waited up to 5 ms
      to get it back from the other slot, the last ones while holding SQLite's write lock,
      which the other process then waited for too. A 100,000-message IMAP sync, seven pairs:
      3-4% faster in five.
    - the garbage collector's youngest generation collected after GC_YOUNG_THRESHOLD more
      objects rather than 700. A batch of 500 messages holds some 20,000 objects until it is
      written: at 700, collections ran all through it (~180 a process in a 100,000-message
      sync, ~130 ms), each walking the batch's objects; at 10,000 most are freed by their
      counts first (5 collections, ~15 ms).
    - its end without the collector's passes over the modules as they are torn down: one
      collection at exit, of the garbage there is then (an object in a cycle is finalized as
      before), and what is still alive frozen (`gc.freeze()`), as the process ends.
      The interpreter's own end walked everything the modules held as it tore them down:
      ~35-60 ms of every command's end (`import chunksync.cli` and exit, 25 turns each: 310 ->
      272 ms)."""
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
    atexit.register(_end_quickly)


def _end_quickly() -> None:
    gc.collect()
    gc.freeze()


def command_of(argv: Sequence[str]) -> tuple[str | None, list[str]]:
    """The CLI command a command line names (after the global options), and its arguments."""
    args = list(argv)
    i = 0
    while i < len(args) and args[i].startswith("-"):
        i += 2 if args[i] in GLOBAL_OPTIONS_WITH_VALUES else 1
    return (args[i], args[i + 1 :]) if i < len(args) else (None, [])


def helpers_wanted(argv: Sequence[str]) -> int:
    """How many helpers a command line will most likely want: 0 unless it is `sync`."""
    command, rest = command_of(argv)
    if command != "sync" or "--help" in rest:
        return 0
    wanted = os.cpu_count() or 1
    for name in ("--processes", "--concurrency"):  # a process needs a slot
        value = _option(rest, name)
        if value is not None:
            if not value.isdigit():
                return 0  # the CLI will say what is wrong with it
            wanted = min(wanted, int(value)) if name == "--concurrency" else int(value)
    return max(0, wanted - 1)


def _option(args: Sequence[str], name: str) -> str | None:
    value = None
    for n, arg in enumerate(args):
        if arg == name and n + 1 < len(args):
            value = args[n + 1]
        elif arg.startswith(name + "="):
            value = arg.partition("=")[2]
    return value


def _spawn() -> subprocess.Popen[bytes]:
    # `python -m chunksync.processes`, not multiprocessing's spawn: that would run the
    # parent's main script (the CLI and all its imports) again in each helper.
    return subprocess.Popen([sys.executable, "-m", "chunksync.processes"], stdin=subprocess.PIPE)


def _stop_waiting() -> None:
    while _waiting:
        proc = _waiting.pop()
        proc.terminate()  # it only imported: nothing to finish
        _wait(proc, TERMINATE_SECONDS)


def _wait(proc: subprocess.Popen[bytes], seconds: float) -> None:
    try:
        proc.wait(seconds)
    except subprocess.TimeoutExpired:
        pass


def helper_main() -> int:
    """A helper's life: import the engine, read the database URL, open it, wait for orders,
    work until the queues finish. Both come pickled through standard input.

    Everything it will run is imported before it reads the URL, while its parent plans on the
    other core: the worker and the built-in sources, which App() and app.worker() imported
    after it (~60 ms of a helper's start)."""
    from chunksync.app import App
    from chunksync.runtime.progress import queues_finished
    from chunksync.runtime.worker import Worker
    from chunksync.sources import builtin

    builtin.sources()  # imports each built-in source's module

    tune_interpreter()
    logging.basicConfig(level=logging.WARNING, format=LOG_FORMAT)
    # Ctrl-C reaches the whole process group: the parent decides; at work, the worker's own
    # handler stops this process gracefully.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    orders = sys.stdin.buffer
    try:
        url = pickle.load(orders)
    except (EOFError, pickle.UnpicklingError):  # the parent went away at once
        return 0
    with App(url) as app:
        try:
            work = pickle.load(orders)
        except (EOFError, pickle.UnpicklingError):  # the parent went away before giving orders
            return 0
        if not isinstance(work, Work):
            return 0
        if work.setup is not None:
            work.setup(app)
        worker: Worker = app.worker(concurrency=work.slots, poll_s=POLL_SECONDS)
        worker.run(
            until=lambda: queues_finished(app.manager, work.queue_ids), check_s=CHECK_SECONDS
        )
    return 0


if __name__ == "__main__":
    from chunksync import processes  # the module's own classes, not __main__'s, for pickle

    raise SystemExit(processes.helper_main())
