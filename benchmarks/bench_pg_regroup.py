"""A change of a dependency's limits over a big backlog, on PostgreSQL: the change moves the
dependency's unfinished chunks to another claim group (migration 0025), in batches after its
own transaction (chunksync.deps.regroup). What the fleet feels meanwhile: an enqueue to one of
the dependency's queues, and the finish of one of its chunks in flight (the statement a worker's
finish is, on a chunk near the front of the walk), each timed while the move runs.

Env: CHUNKSYNC_BENCH_REGROUP_CHUNKS (default 200000) pending, after
CHUNKSYNC_BENCH_REGROUP_HISTORY (default 200000) completed chunks of the same queue, which the
walk reads past (a fleet keeps its finished chunks until retention). Prints, for the change
that limits the dependency and the one that lifts it, how long the command took, the
enqueue's and the finish's waits; checks every chunk ended in its group. Last line:
regroup_enqueue_wait_ms (the worse of the two changes)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

import psycopg
from tests.servers.pgcluster import throwaway

CHUNKS = int(os.environ.get("CHUNKSYNC_BENCH_REGROUP_CHUNKS", "200000"))
HISTORY = int(os.environ.get("CHUNKSYNC_BENCH_REGROUP_HISTORY", "200000"))
DEP = "job://big.example.com"
FILL = """
INSERT INTO chunks (id, queue_id, tenant, seq, payload, status, priority, attempts,
                    max_attempts, run_after, created_at, updated_at, fair_key, finished_at)
SELECT gen_random_uuid(), %(queue)s, 'default', g, '{"n": 1}'::jsonb, %(status)s, 0, 0, 5, now_s,
       now_s, now_s, g, CASE WHEN %(status)s = 'completed' THEN now_s END
FROM generate_series(%(first)s, %(first)s + %(n)s - 1) AS g,
     (SELECT date_part('epoch', now()) AS now_s) AS t
"""


def prepare(url: str) -> tuple[str, str]:
    """A queue of CHUNKS pending chunks leaning on DEP; one of them in flight, near the front of
    the walk (a move in one statement has locked it by the time the finish comes)."""
    from chunksync.app import App

    with App(url) as app:
        app.handler("job")(lambda ctx: None)
        queue = app.create_queue(f"{DEP}/pages", []).id
    with psycopg.connect(url, autocommit=True) as conn:
        first = 1
        for status, count in (("completed", HISTORY), ("pending", CHUNKS)):
            for start in range(first, first + count, 100_000):
                n = min(100_000, first + count - start)
                params = {"queue": queue, "first": start, "n": n, "status": status}
                conn.execute(FILL.encode(), params)
            first += count
        row = conn.execute(
            b"UPDATE chunks SET status = 'processing', lease_token = gen_random_uuid(),"
            b" attempts = 1 WHERE queue_id = %s AND seq = %s RETURNING id::text",
            (queue, HISTORY + min(2000, CHUNKS)),
        ).fetchone()
        conn.execute(b"VACUUM ANALYZE")
    assert row is not None
    return queue, str(row[0])


def timed_after(delay_s: float, work: Callable[[], None], out: list[float]) -> threading.Thread:
    def run() -> None:
        time.sleep(delay_s)
        started = time.perf_counter()
        work()
        out.append((time.perf_counter() - started) * 1000)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def change(url: str, queue: str, chunk: str, values: dict[str, object]) -> tuple[float, ...]:
    """The change's seconds, the enqueue's and the finish's waits in ms, timed meanwhile."""
    from chunksync.app import App
    from chunksync.deps import operate

    def enqueue() -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                b"INSERT INTO chunks (id, queue_id, seq, payload, run_after, created_at,"
                b" updated_at) SELECT gen_random_uuid(), %s, MAX(seq) + 1, '{}', 0, 0, 0"
                b" FROM chunks WHERE queue_id = %s",
                (queue, queue),
            )

    def finish() -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(b"UPDATE chunks SET updated_at = updated_at + 1 WHERE id = %s", (chunk,))

    waits: dict[str, list[float]] = {"enqueue": [], "finish": []}
    with App(url) as app:
        app.handler("job")(lambda ctx: None)
        threads = [
            timed_after(0.3, enqueue, waits["enqueue"]),
            timed_after(0.3, finish, waits["finish"]),
        ]
        started = time.perf_counter()
        operate.set_limits(app.deps, DEP, values, reason="bench")
        took = time.perf_counter() - started
        for t in threads:
            t.join()
    return took, waits["enqueue"][0], waits["finish"][0]


def groups(url: str, queue: str) -> list[tuple[str, int]]:
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            b"SELECT claim_group, COUNT(*) FROM chunks WHERE queue_id = %s GROUP BY 1 ORDER BY 1",
            (queue,),
        ).fetchall()
    return [(str(g), int(n)) for g, n in rows]


def main() -> int:
    with throwaway(durable=True) as cluster:
        url = cluster.create_database("regroup")
        queue, chunk = prepare(url)
        worst = 0.0
        for label, values, group in (
            ("limit", {"connections": 5}, DEP),
            ("lift", {"connections": None}, ""),
        ):
            took, enqueue_ms, finish_ms = change(url, queue, chunk, values)
            moved = CHUNKS + (1 if label == "limit" else 2)  # and the chunks enqueued meanwhile
            want = [("", HISTORY + moved)] if group == "" else [("", HISTORY), (group, moved)]
            assert groups(url, queue) == [g for g in want if g[1]], groups(url, queue)
            print(f"{label} a dependency of {CHUNKS} chunks ({HISTORY} done): the command "
                  f"{took:.2f} s, an enqueue meanwhile {enqueue_ms:.0f} ms, a finish "
                  f"{finish_ms:.0f} ms")  # fmt: skip
            print(f"regroup_{label}_s={took:.2f}")
            print(f"regroup_{label}_finish_wait_ms={finish_ms:.0f}")
            worst = max(worst, enqueue_ms)
    print(f"regroup_enqueue_wait_ms={worst:.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
