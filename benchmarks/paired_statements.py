"""Two source trees' batch statements on PostgreSQL, alternating in one server (A B B A ...):
PostgreSQL's CPU a chunk for the claim, the finish and the attempt rows, each read from its
backend's /proc/<pid>/schedstat (nanoseconds) around the statement. Not in `make bench`.

    git worktree add /tmp/before <commit>
    .venv/bin/python -m benchmarks.paired_statements /tmp/before . [--batches 90]
        [--chunks 100000] [--setting-b plan_cache_mode=force_generic_plan] [--limit-b 1024]

On this noisy two-core machine a whole drain swings by a fifth from one run to the next, and
paired drains cannot tell a change of a few per cent (docs/benchmarks.md, session 21). The
statements alone can: no worker's Python shares the cores, both trees' batches alternate at a
few milliseconds' distance, so a slow minute of the machine falls on both. Each tree gets a
database of its own (its own schema and migrations, a queue of no-op chunks enqueued by its own
code, settled as bench_pg_drain's), and its named queries are read from its own files; the
batches are the worker's: `claim_chunks` of up to 512 chunks, then one transaction with
`finish_chunks` (each completed) and `insert_attempts` (one row each). `--setting-a/-b` set a
session setting on one side's connection (the same tree twice, one with the setting, measures
the setting), and `--limit-a/-b` a side's claim batch (default 512: the worker's largest).
Prints each statement's median us a chunk for A and B, and B's over A's
(`<statement>_ratio_b_over_a=`), the last line the three together.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from tests.servers.pgcluster import PgCluster, throwaway

from chunksync import sql
from chunksync.backends.base import rows_json
from chunksync.backends.postgres import to_psycopg

HERE = Path(__file__).resolve().parent.parent
STATEMENTS = ("claim", "finish", "attempts")
CLAIM = {"kinds": ["noop"], "exclude": [], "queue_id": None, "aging_s": 300.0, "lease_s": 30.0}
ENQUEUE = """
import sys
sys.path[:0] = [{src!r}]
from chunksync.app import App
with App({url!r}) as app:
    app.handler("noop")(lambda ctx: None)
    app.create_queue("noop", payloads=[{{"n": i}} for i in range({chunks})])
"""


def tree_queries(tree: Path) -> dict[str, bytes]:
    """The claim, finish and attempt statements as `tree`'s files write them."""
    folder = tree / "src" / "chunksync" / "sql"
    original = sql._read
    sql._read = lambda dialect, name: (folder / dialect / name).read_text(encoding="utf-8")
    sql.queries.cache_clear()
    try:
        found = sql.queries("postgres")
    finally:
        sql._read = original
        sql.queries.cache_clear()
    names = ("claim_chunks", "finish_chunks", "insert_attempts")
    return {name: to_psycopg(found[name]) for name in names}


def enqueue(cluster: PgCluster, tree: Path, name: str, chunks: int) -> str:
    """A fresh database made and loaded by `tree`'s own code: its URL."""
    url = cluster.create_database(name)
    code = ENQUEUE.format(src=str(tree / "src"), url=url, chunks=chunks)
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, cwd=HERE)
    return url


def busy_ns(pid: int) -> int:
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0])


@contextmanager
def side(url: str, setting: str | None) -> Iterator[tuple[psycopg.Connection[Any], int]]:
    with psycopg.connect(url, autocommit=True) as conn:
        if setting:
            key, value = setting.split("=", 1)
            conn.execute("SELECT set_config(%s, %s, false)", [key, value])
        row = conn.execute("SELECT pg_backend_pid()").fetchone()
        assert row is not None
        yield conn, int(row[0])


def batch(
    conn: psycopg.Connection[Any],
    pid: int,
    queries: dict[str, bytes],
    times: dict[str, list[float]],
    limit: int,
) -> None:
    """One worker batch; appends each statement's backend CPU a chunk (us). The rows are
    built in this tree's shapes (results.finish_row, attempt_row): a tree that changed them
    needs them here too."""
    params = {**CLAIM, "limit": limit, "token": str(uuid.uuid4()), "worker_id": "paired"}
    started = busy_ns(pid)
    cur = conn.execute(queries["claim_chunks"], params, prepare=True)
    names = [d.name for d in cur.description or ()]
    rows = [dict(zip(names, r, strict=True)) for r in cur]
    claimed = busy_ns(pid)
    if not rows:
        return
    reports = [[r["id"], r["lease_token"], "completed", 0, 0, 0, 0, None, None, None, 1, None]
               for r in rows]  # fmt: skip
    attempts = [[r["id"], r["queue_id"], r["tenant"], "paired", r["attempts"], 0.0001,
                 "completed", 1, 1, 10000.0, 1.0, None, None, None, None, 50000000]
                for r in rows]  # fmt: skip
    with conn.transaction():
        before = busy_ns(pid)
        conn.execute(queries["finish_chunks"], {"reports": rows_json(reports)}, prepare=True)
        finished = busy_ns(pid)
        conn.execute(queries["insert_attempts"], {"batch": rows_json(attempts)}, prepare=True)
        logged = busy_ns(pid)
    n = len(rows)
    times["claim"].append((claimed - started) / n / 1000)
    times["finish"].append((finished - before) / n / 1000)
    times["attempts"].append((logged - finished) / n / 1000)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a", type=Path)
    parser.add_argument("b", type=Path)
    parser.add_argument("--batches", type=int, default=90, help="batches a side")
    parser.add_argument("--chunks", type=int, default=100_000, help="chunks a side's queue")
    parser.add_argument("--setting-a")
    parser.add_argument("--setting-b")
    parser.add_argument("--limit-a", type=int, default=512, help="A's claim batch")
    parser.add_argument("--limit-b", type=int, default=512, help="B's claim batch")
    args = parser.parse_args()
    trees = {"a": args.a.resolve(), "b": args.b.resolve()}
    queries = {key: tree_queries(tree) for key, tree in trees.items()}
    times: dict[str, dict[str, list[float]]] = {k: {s: [] for s in STATEMENTS} for k in trees}
    with throwaway(durable=True) as cluster:
        urls = {k: enqueue(cluster, t, f"paired_{k}", args.chunks) for k, t in trees.items()}
        for url in urls.values():
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("VACUUM (ANALYZE)")  # as bench_pg_drain's settled server
        with psycopg.connect(cluster.url(), autocommit=True) as conn:
            conn.execute("CHECKPOINT")
        with side(urls["a"], args.setting_a) as a, side(urls["b"], args.setting_b) as b:
            sides = {"a": a, "b": b}
            for turn in range(args.batches):
                order = ("a", "b") if turn % 2 == 0 else ("b", "a")  # A B B A ...
                for key in order:
                    conn, pid = sides[key]
                    limit = args.limit_a if key == "a" else args.limit_b
                    batch(conn, pid, queries[key], times[key], limit)
    for statement in STATEMENTS:
        med = {k: statistics.median(times[k][statement]) for k in trees}
        ratio = med["b"] / med["a"]
        print(f"{statement:9} a {med['a']:6.2f}  b {med['b']:6.2f} us a chunk  b/a {ratio:.3f}")
        print(f"{statement}_ratio_b_over_a={ratio:.3f}")
    total = {k: sum(statistics.median(times[k][s]) for s in STATEMENTS) for k in trees}
    print(f"total_a_us_per_chunk={total['a']:.2f}")
    print(f"total_b_us_per_chunk={total['b']:.2f}")
    print(f"total_ratio_b_over_a={total['b'] / total['a']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
