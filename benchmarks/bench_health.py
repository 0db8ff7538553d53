"""Health summaries over 1,000,000 attempt rows: spread over 100 queues, and all in one queue,
on SQLite and on PostgreSQL.

The history is what 30 days of retention keep: 1,000 chunks per queue, 1,000,000 attempts
spread evenly over 30 days (so ~1,400 in the last hour), outcomes and categories mixed, written
as plain inserts, then folded into the rollups as the maintenance leader does; then a tail of
TAIL_ATTEMPTS more, finished in the last few seconds and not folded yet, which every reader adds
from the raw rows (what a fleet finishing 100 attempts a second leaves between two folds; more
with CHUNKSYNC_BENCH_TAIL). Each figure is the
median, over RUNS runs, of one queue summary plus one system summary (the dashboard's
overview); the hourly trend is printed beside them, and `queue_list_ms_100_queues=`, every
queue's summary at once as the dashboard's queue table reads them. Ends with
`health_summary_ms_1m_one_queue=<v>`, the worst of both backends for the queue that holds every
attempt (PostgreSQL is skipped, and said so, when it is not installed).
CHUNKSYNC_BENCH_ATTEMPTS changes the row count.
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
from contextlib import contextmanager
from pathlib import Path

from chunksync.app import App
from chunksync.observe import health, listing, rollups, trends

N_ATTEMPTS = int(os.environ.get("CHUNKSYNC_BENCH_ATTEMPTS", "1000000"))
N_QUEUES = 100
CHUNKS_PER_QUEUE = 1000
HISTORY_SECONDS = 30 * 86400.0
TAIL_ATTEMPTS = int(os.environ.get("CHUNKSYNC_BENCH_TAIL", "500"))
TAIL_SECONDS = 5.0  # the leader's fold interval
RUNS = 15
OUTCOMES = ["completed"] * 8 + ["retried", "dead"]
CATEGORIES = ["network", "timeout", "rate_limit", "auth", "not_found"]
Row = tuple[object, ...]


def history(queue_ids: list[str], now: float) -> tuple[list[Row], Iterator[Row]]:
    """The queues' chunks, and their attempts (lazily)."""
    rng = random.Random(7)
    chunks: list[Row] = []
    for q in queue_ids:
        for seq in range(1, CHUNKS_PER_QUEUE * N_QUEUES // len(queue_ids) + 1):
            status = "pending" if seq % 10 == 0 else "dead" if seq % 97 == 0 else "completed"
            chunks.append((str(uuid.uuid4()), q, seq, "{}", status, now, now, now))

    def attempts() -> Iterator[Row]:
        for i in range(N_ATTEMPTS):
            finished = now - HISTORY_SECONDS * (i / N_ATTEMPTS)
            yield attempt_row(rng, queue_ids[i % len(queue_ids)], i, finished)

    return chunks, attempts()


def tail(queue_ids: list[str], now: float) -> list[Row]:
    """The attempts of the last few seconds, past the rollups' watermark."""
    rng = random.Random(11)
    return [
        attempt_row(rng, queue_ids[i % len(queue_ids)], i, now - TAIL_SECONDS * i / TAIL_ATTEMPTS)
        for i in range(TAIL_ATTEMPTS)
    ]


def attempt_row(rng: random.Random, queue_id: str, i: int, finished: float) -> Row:
    outcome = rng.choice(OUTCOMES)
    category = None if outcome == "completed" else rng.choice(CATEGORIES)
    took = rng.expovariate(2.0)
    return (
        str(uuid.uuid4()),
        queue_id,
        f"w{i % 8}",
        finished - took,
        finished,
        took,
        outcome,
        category,
        rng.randint(50, 500) * 1_000_000,
    )


QUEUE_COLUMNS = "(id, name, source, kind, created_at, updated_at)"
CHUNK_COLUMNS = "(id, queue_id, seq, payload, status, run_after, created_at, updated_at)"
ATTEMPT_COLUMNS = (
    "(chunk_id, queue_id, worker_id, started_at, finished_at, processing_s, outcome, category, "
    "rss_bytes, tenant, attempt, items_processed)"
)


def populate_sqlite(path: Path, queues: int) -> list[str]:
    App(f"sqlite:///{path}").close()  # the schema, by migration
    now = time.time()
    queue_ids = [str(uuid.uuid4()) for _ in range(queues)]
    chunks, attempts = history(queue_ids, now)
    conn = sqlite3.connect(path)
    conn.executemany(
        f"INSERT INTO queues {QUEUE_COLUMNS} VALUES (?, ?, 'job://bench', 'job', ?, ?)",
        [(q, f"q{i}", now, now) for i, q in enumerate(queue_ids)],
    )
    conn.executemany(f"INSERT INTO chunks {CHUNK_COLUMNS} VALUES (?, ?, ?, ?, ?, ?, ?, ?)", chunks)
    conn.executemany(
        f"INSERT INTO attempts {ATTEMPT_COLUMNS} "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'default', 1, 10)",
        attempts,
    )
    conn.commit()
    fold_then_add_tail(f"sqlite:///{path}", queue_ids, now)
    conn.execute("ANALYZE")
    conn.close()
    return queue_ids


def populate_postgres(url: str, queues: int) -> list[str]:
    import psycopg

    App(url).close()
    now = time.time()
    queue_ids = [str(uuid.uuid4()) for _ in range(queues)]
    chunks, attempts = history(queue_ids, now)
    with psycopg.connect(url) as conn:
        with conn.cursor().copy(f"COPY queues {QUEUE_COLUMNS} FROM STDIN") as copy:
            for i, q in enumerate(queue_ids):
                copy.write_row((q, f"q{i}", "job://bench", "job", now, now))
        with conn.cursor().copy(f"COPY chunks {CHUNK_COLUMNS} FROM STDIN") as copy:
            for row in chunks:
                copy.write_row(row)
        with conn.cursor().copy(f"COPY attempts {ATTEMPT_COLUMNS} FROM STDIN") as copy:
            for row in attempts:
                copy.write_row((*row, "default", 1, 10))
    fold_then_add_tail(url, queue_ids, now)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    return queue_ids


def fold_then_add_tail(url: str, queue_ids: list[str], now: float) -> None:
    """Fold the history into the rollups (as the leader does), then write the unfolded tail."""
    with App(url) as app:
        started = time.monotonic()
        rollups.fold(app.manager, lag_s=0)
        print(f"folded {N_ATTEMPTS} attempts in {time.monotonic() - started:.1f} s")
    rows = [(*row, "default", 1, 10) for row in tail(queue_ids, now)]
    if url.startswith("sqlite:"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            conn.executemany(f"INSERT INTO attempts {ATTEMPT_COLUMNS} VALUES ({'?, ' * 11}?)", rows)
        conn.close()
        return
    import psycopg

    with (
        psycopg.connect(url) as pg,
        pg.cursor().copy(f"COPY attempts {ATTEMPT_COLUMNS} FROM STDIN") as copy,
    ):
        for row in rows:
            copy.write_row(row)


def timed(fn: Callable[[], object]) -> float:
    fn()  # warm the page cache, as a dashboard that refreshes every few seconds has it
    runs = []
    for _ in range(RUNS):
        started = time.perf_counter()
        fn()
        runs.append((time.perf_counter() - started) * 1000)
    return statistics.median(runs)


def measure(url: str, queue_id: str, label: str) -> float:
    """One queue summary plus one system summary (ms); prints each and the hourly trend."""
    with App(url) as app:
        q = timed(lambda: health.queue_summary(app.manager, queue_id))
        s = timed(lambda: health.system_summary(app.manager))
        h = timed(lambda: trends.hourly(app.manager))
    print(f"{label}: queue summary {q:.1f} ms, system summary {s:.1f} ms, hourly trend {h:.1f} ms")
    return q + s


def measure_list(url: str) -> float:
    """Every queue's summary at once, as the dashboard's queue table reads them (ms)."""
    with App(url) as app:
        ms = timed(lambda: listing.queue_summaries(app.manager, app.manager.list_queues()))
    print(f"sqlite, {N_QUEUES} queues: the list of every queue's summary {ms:.1f} ms")
    return ms


@contextmanager
def plain_owner_database(name: str) -> Iterator[tuple[str, str] | None]:
    """A fresh cluster's database `name`, owned by a plain role as in production, so that row
    security applies to its reads (a superuser would bypass it): (the owner's URL, a
    superuser's, to fill it: COPY is refused under row security). None, said, without
    PostgreSQL."""
    try:
        from tests.servers.pgcluster import PgCluster, available
    except ImportError:
        yield None
        return
    if not available():
        print("PostgreSQL is not installed: its case is skipped (bash scripts/test-servers.sh)")
        yield None
        return
    import psycopg

    cluster = PgCluster(durable=False).start()
    try:
        with psycopg.connect(cluster.url(), autocommit=True) as conn:
            conn.execute("CREATE ROLE fleet LOGIN NOSUPERUSER NOBYPASSRLS")
            conn.execute(f"CREATE DATABASE {name} OWNER fleet".encode())
        yield cluster.url(name, user="fleet"), cluster.url(name)
    finally:
        cluster.stop()


def postgres_one_queue() -> float | None:
    with plain_owner_database("bench_health") as urls:
        if urls is None:
            return None
        url, superuser = urls
        App(url).close()  # the owner makes the schema
        started = time.monotonic()
        [single] = populate_postgres(superuser, 1)
        print(f"postgres: populated {N_ATTEMPTS} attempts in {time.monotonic() - started:.0f} s")
        label = f"postgres (plain owner), one queue holding all {N_ATTEMPTS} attempts"
        return measure(url, single, label)


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        spread = Path(folder) / "spread.db"
        started = time.monotonic()
        queue_ids = populate_sqlite(spread, N_QUEUES)
        print(f"sqlite: populated {N_ATTEMPTS} attempts in {time.monotonic() - started:.0f} s")
        spread_ms = measure(
            f"sqlite:///{spread}", queue_ids[0], f"sqlite, {N_QUEUES} queues (one's summary)"
        )
        list_ms = measure_list(f"sqlite:///{spread}")
        one = Path(folder) / "one.db"
        [single] = populate_sqlite(one, 1)
        worst = [measure(f"sqlite:///{one}", single, f"sqlite, one queue holding all {N_ATTEMPTS}")]
    pg = postgres_one_queue()
    if pg is not None:
        worst.append(pg)
    print(f"queue_list_ms_100_queues={list_ms:.1f}")
    print(f"health_summary_ms_1m={spread_ms:.1f}")
    print(f"health_summary_ms_1m_one_queue={max(worst):.1f}")


if __name__ == "__main__":
    main()
