"""A worker's drain behind a connection cap per mail account, on PostgreSQL (docs/dependencies.md:
a fleet declares each account's cap with a pattern, `noop://*@mail.example`, connections=2).

ACCOUNTS accounts (CHUNKSYNC_BENCH_ACCOUNTS, default 2,000), one queue of ten no-op chunks each,
on a cluster without fsync (the claims' cost is the subject, not the disk). One worker of four
slots, as `chunksync worker` starts it (its own pool), drains them: `capped` with the pattern
declared, `plain` the same queues without it (the ceiling: the plain claim, one statement a
batch). In turns, RUNS of each, a fresh database each run; medians.

Prints `accounts_drain_chunks_per_s_<case>=`, `accounts_worker_cpu_us_per_chunk_<case>=` (this
process's CPU over the drain, over the chunks) and last `accounts_drain_ratio=` (capped over
plain). Before 2026-12-07 (session 34), at 5,000 accounts: 205 chunks/s capped (now ~3,000),
with one pooled connection for four slots, every budget reported after every batch, the list
of limited dependencies read five times a second, a claim in two finding its account drained,
and a pass over every account at each claim.
"""

from __future__ import annotations

import os
import resource
import statistics
import time

import psycopg
from tests.servers.pgcluster import PgCluster

from chunksync.app import App

ACCOUNTS = int(os.environ.get("CHUNKSYNC_BENCH_ACCOUNTS", "2000"))
CHUNKS_AN_ACCOUNT = 10
SLOTS = 4
RUNS = 3
PATTERN = "noop://*@mail.example"


def populate(url: str, capped: bool) -> None:
    with App(url) as app:
        app.handler("noop")(lambda ctx: None)
        if capped:
            app.dependency(PATTERN, connections=2)
        for i in range(ACCOUNTS):
            payloads = [{"n": n} for n in range(CHUNKS_AN_ACCOUNT)]
            app.create_queue(f"noop://u{i}@mail.example/INBOX", payloads, tenant=f"t{i}")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(b"VACUUM ANALYZE")


def drain(url: str) -> tuple[float, float]:
    """Chunks a second, and this process's CPU a chunk in microseconds."""
    total = ACCOUNTS * CHUNKS_AN_ACCOUNT
    count = b"SELECT count(*) FROM chunks WHERE status = 'completed'"
    with App(url) as app, psycopg.connect(url, autocommit=True) as probe:
        app.handler("noop")(lambda ctx: None)
        worker = app.worker(concurrency=SLOTS, poll_s=0.05)
        before = resource.getrusage(resource.RUSAGE_SELF)
        started = time.perf_counter()
        worker.start()
        try:
            done = 0
            while done < total:
                time.sleep(0.05)
                row = probe.execute(count).fetchone()
                done = int(row[0]) if row else 0
            took = time.perf_counter() - started
            after = resource.getrusage(resource.RUSAGE_SELF)
        finally:
            worker.stop()
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return total / took, cpu / total * 1e6


def main() -> int:
    cluster = PgCluster(durable=False).start()
    rates: dict[str, list[float]] = {"capped": [], "plain": []}
    cpus: dict[str, list[float]] = {"capped": [], "plain": []}
    try:
        for run in range(RUNS):
            for case in ("capped", "plain") if run % 2 == 0 else ("plain", "capped"):
                url = cluster.create_database(f"accounts_{case}_{run}")
                populate(url, case == "capped")
                rate, cpu = drain(url)
                rates[case].append(rate)
                cpus[case].append(cpu)
                print(f"{case}: {rate:,.0f} chunks/s, worker {cpu:.0f} us a chunk", flush=True)
                cluster.drop_database(f"accounts_{case}_{run}")
    finally:
        cluster.stop()
    print(f"{ACCOUNTS:,} accounts of {CHUNKS_AN_ACCOUNT} chunks, a worker of {SLOTS} slots")
    for case in ("capped", "plain"):
        print(f"accounts_drain_chunks_per_s_{case}={statistics.median(rates[case]):.0f}")
        print(f"accounts_worker_cpu_us_per_chunk_{case}={statistics.median(cpus[case]):.0f}")
    ratio = statistics.median(rates["capped"]) / statistics.median(rates["plain"])
    print(f"accounts_drain_ratio={ratio:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
