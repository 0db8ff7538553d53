"""The price of handler isolation: drain N no-op chunks on SQLite with the handler on the slot's
thread, then in a forked process per chunk (`Worker(isolate={"noop": 30})`).

Prints chunks/s both ways and ends with `isolation_overhead_ms_per_chunk=<v>`: the extra time
one chunk costs when its handler runs in a process of its own (one slot, so it is per chunk).
N defaults to 2,000: CHUNKSYNC_BENCH_CHUNKS=200 makes it quicker.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from benchmarks.sqlite_ceiling import noop_queue
from chunksync.app import App

N_CHUNKS = int(os.environ.get("CHUNKSYNC_BENCH_CHUNKS", "2000"))
ISOLATION_TIMEOUT_SECONDS = 30.0


def drain(folder: Path, isolated: bool) -> float:
    """Seconds to drain the queue with one slot."""
    url = f"sqlite:///{folder / f'isolation-{isolated}.db'}"
    with App(url) as app:
        queue = noop_queue(app, N_CHUNKS)
        isolate = {"noop": ISOLATION_TIMEOUT_SECONDS} if isolated else {}
        worker = app.worker(concurrency=1, poll_s=0.01, isolate=isolate)
        started = time.perf_counter()
        worker.run_until_done([queue.id])
        elapsed = time.perf_counter() - started
        totals = app.manager.get_queue(queue.id).totals
        assert totals.get("completed") == N_CHUNKS, totals  # type: ignore[call-overload]
    return elapsed


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        inline = drain(Path(tmp), isolated=False)
        forked = drain(Path(tmp), isolated=True)
    print(f"{N_CHUNKS} chunks, 1 slot: on the slot's thread {N_CHUNKS / inline:,.0f} chunks/s")
    print(f"{N_CHUNKS} chunks, 1 slot: in a process each {N_CHUNKS / forked:,.0f} chunks/s")
    print(f"isolation_overhead_ms_per_chunk={(forked - inline) / N_CHUNKS * 1000:.2f}")


if __name__ == "__main__":
    main()
