"""A queue summary plus the system summary, on SQLite holding 1,000,000 attempt rows.

The history is what 30 days of retention keep: 100 queues of 1,000 chunks, 1,000,000 attempts
spread evenly over 30 days (so ~1,400 in the last hour), outcomes and categories mixed. The
headline is the median, over RUNS runs, of one queue summary plus one system summary; the
worst case (one queue that holds every attempt) is printed beside it, not hidden.
Ends with `health_summary_ms_1m=<v>`. CHUNKSYNC_BENCH_ATTEMPTS changes the row count.
"""

from __future__ import annotations

import os
import random
import sqlite3
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

from chunksync.app import App
from chunksync.observe import health

N_ATTEMPTS = int(os.environ.get("CHUNKSYNC_BENCH_ATTEMPTS", "1000000"))
N_QUEUES = 100
CHUNKS_PER_QUEUE = 1000
HISTORY_SECONDS = 30 * 86400.0
RUNS = 15
OUTCOMES = ["completed"] * 8 + ["retried", "dead"]
CATEGORIES = ["network", "timeout", "rate_limit", "auth", "not_found"]


def populate(path: Path, queues: int) -> list[str]:
    App(f"sqlite:///{path}").close()  # the schema, by migration
    rng = random.Random(7)
    now = time.time()
    conn = sqlite3.connect(path)
    queue_ids = [str(uuid.uuid4()) for _ in range(queues)]
    conn.executemany(
        "INSERT INTO queues (id, name, source, kind, created_at, updated_at) "
        "VALUES (?, ?, 'job://bench', 'job', ?, ?)",
        [(q, f"q{i}", now, now) for i, q in enumerate(queue_ids)],
    )
    chunks: list[tuple[object, ...]] = []
    for q in queue_ids:
        for seq in range(1, CHUNKS_PER_QUEUE * N_QUEUES // queues + 1):
            status = "pending" if seq % 10 == 0 else "dead" if seq % 97 == 0 else "completed"
            chunks.append((str(uuid.uuid4()), q, seq, "{}", status, now, now, now))
    conn.executemany(
        "INSERT INTO chunks (id, queue_id, seq, payload, status, run_after, created_at, "
        "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        chunks,
    )

    def attempts() -> Iterator[tuple[object, ...]]:
        for i in range(N_ATTEMPTS):
            finished = now - HISTORY_SECONDS * (i / N_ATTEMPTS)
            outcome = rng.choice(OUTCOMES)
            category = None if outcome == "completed" else rng.choice(CATEGORIES)
            took = rng.expovariate(2.0)
            yield (
                str(uuid.uuid4()),
                queue_ids[i % queues],
                f"w{i % 8}",
                finished - took,
                finished,
                took,
                outcome,
                category,
                rng.randint(50, 500) * 1_000_000,
            )

    conn.executemany(
        "INSERT INTO attempts (chunk_id, queue_id, tenant, worker_id, attempt, started_at, "
        "finished_at, processing_s, items_processed, outcome, category, rss_bytes) "
        "VALUES (?, ?, 'default', ?, 1, ?, ?, ?, 10, ?, ?, ?)",
        attempts(),
    )
    conn.commit()
    conn.execute("ANALYZE")
    conn.close()
    return queue_ids


def timed(fn: Callable[[], object]) -> float:
    fn()  # warm the page cache, as a dashboard that refreshes every few seconds has it
    runs = []
    for _ in range(RUNS):
        started = time.perf_counter()
        fn()
        runs.append((time.perf_counter() - started) * 1000)
    return statistics.median(runs)


def measure(path: Path, queue_id: str) -> tuple[float, float]:
    with App(f"sqlite:///{path}") as app:
        q = timed(lambda: health.queue_summary(app.manager, queue_id))
        s = timed(lambda: health.system_summary(app.manager))
    return q, s


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        spread = Path(folder) / "spread.db"
        started = time.monotonic()
        queue_ids = populate(spread, N_QUEUES)
        print(f"populated {N_ATTEMPTS} attempts in {time.monotonic() - started:.0f} s")
        q, s = measure(spread, queue_ids[0])
        print(f"sqlite queue summary ({N_ATTEMPTS // N_QUEUES} attempts): {q:.1f} ms")
        print(f"sqlite system summary: {s:.1f} ms")
        one = Path(folder) / "one.db"
        [single] = populate(one, 1)
        wq, ws = measure(one, single)
        print(f"worst case system summary: {ws:.1f} ms")
        print(f"worst case, one queue holding all {N_ATTEMPTS} attempts: queue summary {wq:.0f} ms")
        print(f"health_summary_ms_1m={q + s:.1f}")


if __name__ == "__main__":
    main()
