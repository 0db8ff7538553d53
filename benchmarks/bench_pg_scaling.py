"""How far one PostgreSQL goes: the drain rate of no-op chunks against worker processes.

The same drain as bench_pg_drain (N no-op chunks, one durable cluster, each process one slot
with the adaptive claim batch, health metrics on), with 1, 2, 4, 8 and 16 worker processes. The
counts run in turns, ROUNDS times (1, 2, 4, 8, 16, 1, 2, ...), so that a slow spell of the
machine does not land on one count; each count's median is printed with the CPU cores that
PostgreSQL (from /proc, over the drain) and the worker processes (their own CPU clocks, from
the start signal to their stop) kept busy on average while it ran, which says whether the
database or the workers bind, and how much of the machine is left idle.

Env: CHUNKSYNC_BENCH_SCALING_CHUNKS (default 20000), CHUNKSYNC_BENCH_SCALING_ROUNDS (default 2),
CHUNKSYNC_BENCH_SCALING_PROCESSES (default "1,2,4,8,16"). Last lines: pg_scaling_best_processes,
pg_scaling_peak_chunks_per_s.
"""

from __future__ import annotations

import os
import statistics

from tests.servers.pgcluster import PgCluster, throwaway

from benchmarks import bench_pg_drain

N_CHUNKS = int(os.environ.get("CHUNKSYNC_BENCH_SCALING_CHUNKS", "20000"))
ROUNDS = max(1, int(os.environ.get("CHUNKSYNC_BENCH_SCALING_ROUNDS", "2")))
PROCESSES = [
    int(p) for p in os.environ.get("CHUNKSYNC_BENCH_SCALING_PROCESSES", "1,2,4,8,16").split(",")
]


def drain(cluster: PgCluster, processes: int, run: int) -> tuple[float, float, float]:
    """One drain: chunks per second, and the CPU cores PostgreSQL and the worker processes kept
    busy on average while it ran (each one's CPU per chunk, at the drain's rate)."""
    rate, workers_us, server_us = bench_pg_drain.drain_chunksync_cpu(cluster, processes, run)
    return rate, server_us * rate / 1e6, workers_us * rate / 1e6


def main() -> int:
    bench_pg_drain.N_CHUNKS = N_CHUNKS
    rates: dict[int, list[float]] = {p: [] for p in PROCESSES}
    cores: dict[int, list[tuple[float, float]]] = {p: [] for p in PROCESSES}
    with throwaway(durable=True, max_connections=200) as cluster:
        print(f"{N_CHUNKS} no-op chunks per drain, PostgreSQL 15 durable, {os.cpu_count()} CPUs")
        for run in range(ROUNDS):
            for p in PROCESSES:
                rate, pg, workers = drain(cluster, p, run)
                rates[p].append(rate)
                cores[p].append((pg, workers))
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
