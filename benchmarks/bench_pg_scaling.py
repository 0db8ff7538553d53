"""How far one PostgreSQL goes: the drain rate of no-op chunks against worker processes.

The same drain as bench_pg_drain (N no-op chunks, one durable cluster, each process one slot
with the adaptive claim batch, health metrics on), with 1, 2, 4, 8 and 16 worker processes. The
counts run in turns, ROUNDS times (1, 2, 4, 8, 16, 1, 2, ...), so that a slow spell of the
machine does not land on one count; each count's median is printed with the CPU cores that
PostgreSQL (from /proc) and the worker processes (their rusage) kept busy on average over the
run, which says whether the database or the workers bind.

Env: CHUNKSYNC_BENCH_SCALING_CHUNKS (default 20000), CHUNKSYNC_BENCH_SCALING_ROUNDS (default 2),
CHUNKSYNC_BENCH_SCALING_PROCESSES (default "1,2,4,8,16"). Last lines: pg_scaling_best_processes,
pg_scaling_peak_chunks_per_s.
"""

from __future__ import annotations

import os
import resource
import statistics
import sys
import time
from pathlib import Path

from tests.servers.pgcluster import PgCluster, available

from benchmarks import bench_pg_drain

N_CHUNKS = int(os.environ.get("CHUNKSYNC_BENCH_SCALING_CHUNKS", "20000"))
ROUNDS = max(1, int(os.environ.get("CHUNKSYNC_BENCH_SCALING_ROUNDS", "2")))
PROCESSES = [
    int(p) for p in os.environ.get("CHUNKSYNC_BENCH_SCALING_PROCESSES", "1,2,4,8,16").split(",")
]


def _cpu_ticks() -> int:
    """PostgreSQL's CPU ticks so far: its live processes' own plus, on the postmaster, those of
    the backends it has reaped (a drain's backends end with their connections, before the
    second reading)."""
    procs: dict[str, list[str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # gone since the listing
            continue
        if stat[stat.index("(") + 1 : stat.rindex(")")].startswith("postgres"):
            procs[entry.name] = stat[stat.rindex(")") + 2 :].split()
    pg = 0
    for fields in procs.values():
        pg += int(fields[11]) + int(fields[12])  # utime, stime
        if fields[1] not in procs:  # the postmaster: its reaped children's too
            pg += int(fields[13]) + int(fields[14])  # cutime, cstime
    return pg


def drain(cluster: PgCluster, processes: int, run: int) -> tuple[float, float, float]:
    """One drain: chunks per second, and the CPU cores PostgreSQL and the worker processes kept
    busy on average over the whole call (its set-up included: database, enqueue, start)."""
    hz = os.sysconf("SC_CLK_TCK")
    started, pg0 = time.monotonic(), _cpu_ticks()
    workers0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    rate = bench_pg_drain.drain_chunksync(cluster, processes, run)
    workers1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall, pg1 = time.monotonic() - started, _cpu_ticks()
    worker_s = sum(getattr(workers1, f) - getattr(workers0, f) for f in ("ru_utime", "ru_stime"))
    return rate, (pg1 - pg0) / hz / wall, worker_s / wall


def main() -> int:
    if not available():
        print("PostgreSQL 15 is not installed: run 'bash scripts/test-servers.sh'", file=sys.stderr)
        return 1
    bench_pg_drain.N_CHUNKS = N_CHUNKS
    rates: dict[int, list[float]] = {p: [] for p in PROCESSES}
    cores: dict[int, list[tuple[float, float]]] = {p: [] for p in PROCESSES}
    cluster = PgCluster(durable=True, max_connections=200).start()
    try:
        print(f"{N_CHUNKS} no-op chunks per drain, PostgreSQL 15 durable, {os.cpu_count()} CPUs")
        for run in range(ROUNDS):
            for p in PROCESSES:
                rate, pg, workers = drain(cluster, p, run)
                rates[p].append(rate)
                cores[p].append((pg, workers))
    finally:
        cluster.stop()
    print("processes  chunks/s (median)  cores busy: postgres  workers  runs")
    medians = {p: statistics.median(v) for p, v in rates.items()}
    for p in PROCESSES:
        runs = " ".join(f"{v:.0f}" for v in rates[p])
        pg = statistics.median(c[0] for c in cores[p])
        workers = statistics.median(c[1] for c in cores[p])
        print(f"{p:>9} {medians[p]:>18.0f} {pg:>20.2f} {workers:>8.2f}  {runs}")
    best = max(PROCESSES, key=lambda p: medians[p])
    print(f"pg_scaling_best_processes={best}")
    print(f"pg_scaling_peak_chunks_per_s={medians[best]:.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
