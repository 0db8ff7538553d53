"""Where PostgreSQL's time goes in a real drain (#18), statement by statement.

bench_pg_drain says how much of the server's CPU a chunk costs (`pg_server_cpu_us_per_chunk`);
this says which statement spends it. Each round drains bench_pg_drain's queue (20,000 no-op
chunks, its best process count, the same durable cluster settings) with pg_stat_statements
loaded, and reads each statement's time in the server (execution and planning), its WAL and
its buffers, per chunk, from the start signal to the workers' stop (their stop's few statements
count in "other"); medians of the rounds.

The statement times are the server's clock inside each statement: on a machine whose two cores
are full, they include a backend's waits for a core, so "outside statements" (the backends' CPU
less the time in statements: parsing and binding the parameters, the protocol, commits) is a
lower bound. The extension costs a few per cent itself, so this is not part of `make bench`:
`.venv/bin/python -m benchmarks.pg_statements`. Env: CHUNKSYNC_BENCH_STATEMENT_ROUNDS (default
3), CHUNKSYNC_BENCH_PG_PROCESSES (default 2). Last line: pg_in_statements_us_per_chunk.
"""

from __future__ import annotations

import os
import statistics
from typing import Any

import psycopg
from tests.servers.pgcluster import PgCluster, throwaway

from benchmarks.bench_pg_drain import N_CHUNKS, _chunksync_process, _timed, noop_queue

ROUNDS = max(1, int(os.environ.get("CHUNKSYNC_BENCH_STATEMENT_ROUNDS", "3")))
PROCESSES = int(os.environ.get("CHUNKSYNC_BENCH_PG_PROCESSES", "2").split(",")[0])
DONE = "SELECT 1 FROM queues WHERE status = 'completed'"
SETTINGS = {
    "shared_preload_libraries": "'pg_stat_statements'",
    "pg_stat_statements.track": "top",  # a function's own statements count in its call
    "pg_stat_statements.track_planning": "on",
}
# The worker's three statements a batch, told apart by how their text starts (pg_stat_statements
# records a statement from its first word, leading comments left out, its values as $n): each
# start is that of the named queries beside it alone (tests/unit/test_pg_statements_kinds.py),
# and a claim's text holds `SKIP LOCKED` (LOCKED: fair_virtual_time starts with the same `room`).
# Everything else is "other".
KINDS = (
    ("claim", ("WITH RECURSIVE levels", "WITH\nroom AS MATERIALIZED (")),
    ("finish", ("WITH r AS (",)),
    ("attempts", ("INSERT INTO attempts (",)),
)
LOCKED = {"claim": "SKIP LOCKED"}
NAMED = {
    "claim": ("claim_chunks", "claim_chunks_of"),
    "finish": ("finish_chunks",),
    "attempts": ("insert_attempts", "insert_attempt"),  # a batch's; a recovered chunk's
}
READ = """
SELECT query, calls, total_exec_time, total_plan_time, wal_bytes, shared_blks_hit
FROM pg_stat_statements
WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
"""


def kind(query: str) -> str:
    text = query.lstrip()
    return next(
        (
            name
            for name, starts in KINDS
            if text.startswith(starts) and LOCKED.get(name, "") in text
        ),
        "other",
    )


def one_drain(cluster: PgCluster, run: int) -> tuple[float, float, list[tuple[Any, ...]]]:
    """A drain's rate, the server's CPU a chunk (bench_pg_drain's window) and its statements.
    The settling before the window (VACUUM, CHECKPOINT) is left out: reset after it."""
    url, _ = noop_queue(cluster, f"statements_{run}")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    reset = "SELECT pg_stat_statements_reset()"
    rate, server_us = _timed(cluster, url, _chunksync_process, PROCESSES, DONE, before=reset)
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(READ).fetchall()
    return rate, server_us, rows


def main() -> int:
    per: dict[str, list[float]] = {}
    with throwaway(durable=True, settings=SETTINGS) as cluster:
        print(f"{N_CHUNKS} no-op chunks, {PROCESSES} processes, {ROUNDS} rounds")
        for run in range(ROUNDS):
            rate, server_us, rows = one_drain(cluster, run)
            figures = summarize(rows)
            figures["server_cpu"] = server_us
            figures["outside"] = server_us - figures["in_statements"]
            for key, value in figures.items():
                per.setdefault(key, []).append(value)
            print(f"round {run + 1}: {rate:.0f} chunks/s, server {server_us:.1f} us a chunk")
    mid = {key: statistics.median(values) for key, values in per.items()}
    print(f"{'statement':<10} {'us a chunk':>10} {'planning':>9} {'WAL bytes':>10} {'buffers':>8}")
    for name in (*(k for k, _ in KINDS), "other"):
        print(
            f"{name:<10} {mid[name]:>10.1f} {mid[name + '_plan']:>9.2f} "
            f"{mid[name + '_wal']:>10.0f} {mid[name + '_buffers']:>8.1f}"
        )
    for name in (*(k for k, _ in KINDS), "other"):
        print(f"pg_{name}_us_per_chunk={mid[name]:.1f}")
    print(f"pg_wal_bytes_per_chunk={mid['wal']:.0f}")
    print(f"pg_server_cpu_us_per_chunk={mid['server_cpu']:.1f}")
    print(f"pg_outside_statements_us_per_chunk={mid['outside']:.1f}")
    print(f"pg_in_statements_us_per_chunk={mid['in_statements']:.1f}")
    return 0


def summarize(rows: list[tuple[Any, ...]]) -> dict[str, float]:
    """Each kind's time, planning, WAL and buffer hits a chunk; and all statements' time."""
    out = {
        f"{name}{part}": 0.0
        for name in (*(k for k, _ in KINDS), "other")
        for part in ("", "_plan", "_wal", "_buffers")
    }
    for query, _calls, exec_ms, plan_ms, wal, hits in rows:
        if "pg_stat_statements" in query:
            continue
        name = kind(query)
        out[name] += (exec_ms + plan_ms) * 1e3 / N_CHUNKS
        out[name + "_plan"] += plan_ms * 1e3 / N_CHUNKS
        out[name + "_wal"] += float(wal) / N_CHUNKS
        out[name + "_buffers"] += hits / N_CHUNKS
    names = (*(k for k, _ in KINDS), "other")
    out["in_statements"] = sum(out[n] for n in names)
    out["wal"] = sum(out[n + "_wal"] for n in names)
    return out


if __name__ == "__main__":
    raise SystemExit(main())
