"""PostgreSQL drain: N no-op chunks through chunksync, and N no-op jobs through pgqueuer and
procrastinate, on one throwaway durable cluster (fsync and synchronous_commit on).

Every library gets its jobs enqueued first, into a fresh database; the clock runs from the moment
every worker process is connected and ready until the database says the last job is done (polled
every 20 ms over one connection).
Tuning, stated: chunksync `concurrency=1, poll 0.05 s` per process with its default adaptive claim
batch (1 doubling to 512 while a batch takes under 0.25 s), health metrics on (one attempt row
per chunk); pgqueuer `QueueManager.run(mode=drain, batch_size=16)` on the psycopg async driver;
procrastinate `run_worker(wait=False, concurrency=4, fetch_job_polling_interval=0.05,
delete_jobs='never')` with 4 processes. chunksync and pgqueuer each run with 2 and 4 processes
(PROCESS_COUNTS) and are compared each at its own best count: on this 2-core machine chunksync
is quickest with 2 (one per core; bench_pg_scaling shows the curve), pgqueuer with 4.

The machine is shared and noisy (10-20% from one run to the next), so chunksync, pgqueuer and
the ceiling run in turns, REPEATS times each at each count, and their medians are compared;
chunksync with 1 process and procrastinate (20x behind) run once.

The ceiling: chunksync's own claim, finish and attempt SQL driven by pgbench with as many clients
as the drain's processes and batches of 512 (benchmarks/pg_ceiling.py), on a fresh database of
the same N chunks, in the same turns; compared at chunksync's best count.

Env: CHUNKSYNC_BENCH_PG_CHUNKS (default 20000), CHUNKSYNC_BENCH_PG_REPEATS (default 5),
CHUNKSYNC_BENCH_PG_PROCESSES (default "2,4"). Last lines: pg_drain_processes and
pgqueuer_processes (each one's best count), pg_drain_chunks_per_s (chunksync at its best,
median), ratio_vs_pgqueuer (each at its best), ratio_vs_procrastinate, worker_cpu_us_per_chunk
(chunksync's processes' CPU from the start signal to their stop, over the chunks:
time.process_time in each, every thread; at its best count, and each count's as
worker_cpu_us_per_chunk_<n>_processes), pg_server_cpu_us_per_chunk and
pgqueuer_server_cpu_us_per_job (PostgreSQL's processes' CPU over the drain, from the start
signal until the database says it is done, over the jobs; each at its best count),
pg_sql_ceiling_chunks_per_s (as many clients), ratio_vs_sql_ceiling. Before them,
machine_python_loop_ms: a fixed pure-Python loop (ten million additions) timed in the same run,
in a function, the yardstick for the figures of CPU a chunk, which are absolute and move with
the machine (the same code: 18.4 us a chunk on session 20's machine, 33.2 on session 21's,
where this loop took 412 ms; docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

import psycopg
from tests.servers.pgcluster import PgCluster, throwaway

from benchmarks.pg_ceiling import ceiling, settle

N_CHUNKS = int(os.environ.get("CHUNKSYNC_BENCH_PG_CHUNKS", "20000"))
REPEATS = max(1, int(os.environ.get("CHUNKSYNC_BENCH_PG_REPEATS", "5")))
PEER_PROCESSES = 4  # procrastinate's, run once
# chunksync and pgqueuer each run with every count here, in turns, and each is compared at its
# own best (the median of its turns): on 2 cores chunksync drains fastest with 2 processes,
# pgqueuer with 4. The SQL ceiling runs with as many pgbench clients, and is compared at
# chunksync's best count (the same clients, as #18 asks).
PROCESS_COUNTS = tuple(
    int(n) for n in os.environ.get("CHUNKSYNC_BENCH_PG_PROCESSES", "2,4").split(",")
)
CONCURRENCY = 1  # slots per process: no-op chunks gain nothing from threads sharing a GIL
BATCH = 16  # pgqueuer batch_size
POLL_SECONDS = 0.05
DONE_POLL_SECONDS = 0.02
TIMEOUT_SECONDS = 600.0
CPU_DIR_ENV = "CHUNKSYNC_BENCH_CPU_DIR"  # where each chunksync worker process writes its CPU


# --- chunksync --------------------------------------------------------------------------------


def _chunksync_process(url: str, ready: Event, go: Event, stop: Event) -> None:
    from chunksync.app import App
    from chunksync.processes import tune_interpreter

    tune_interpreter()  # as `chunksync worker` sets up its process
    with App(url) as app:
        app.handler("noop")(lambda ctx: None)
        worker = app.worker(concurrency=CONCURRENCY, poll_s=POLL_SECONDS)
        ready.set()
        go.wait()
        cpu = time.process_time()  # this process's CPU (every thread), from the start signal
        worker.start()
        stop.wait()
        worker.stop()
        cpu = time.process_time() - cpu
    out = os.environ.get(CPU_DIR_ENV)
    if out:
        Path(out, str(os.getpid())).write_text(repr(cpu), encoding="utf-8")


def noop_queue(cluster: PgCluster, name: str) -> tuple[str, str]:
    """A fresh database holding one queue of N_CHUNKS no-op chunks: (its URL, the queue's id)."""
    from chunksync.app import App

    url = cluster.create_database(name)
    with App(url) as app:
        app.handler("noop")(lambda ctx: None)
        queue = app.create_queue("noop", payloads=[{"n": i} for i in range(N_CHUNKS)])
    return url, queue.id


def postgres_cpu_ticks() -> int:
    """PostgreSQL's CPU ticks so far: its live processes' own plus, on the postmaster, those of
    the backends it has reaped (a backend whose connection closes ends before a later reading)."""
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


def python_loop_ms(rounds: int = 5) -> float:
    """The machine's speed at plain Python: ten million additions, the median of `rounds`."""
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        total = 0
        for i in range(10_000_000):
            total += i
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def drain_chunksync(cluster: PgCluster, processes: int, run: int = 0) -> float:
    return drain_chunksync_cpu(cluster, processes, run)[0]


def drain_chunksync_cpu(
    cluster: PgCluster, processes: int, run: int = 0
) -> tuple[float, float, float]:
    """Chunks per second, the worker processes' CPU per chunk in microseconds (from the start
    signal to their stop, all threads; a no-op handler, so all of it is chunksync's), and
    PostgreSQL's over the drain (`_timed`)."""
    with tempfile.TemporaryDirectory() as cpu_dir:
        os.environ[CPU_DIR_ENV] = cpu_dir
        try:
            rate, server_us = _drain_chunksync(cluster, processes, run)
        finally:
            del os.environ[CPU_DIR_ENV]
        cpu = sum(float(f.read_text()) for f in Path(cpu_dir).iterdir())
    return rate, cpu / N_CHUNKS * 1e6, server_us


def _drain_chunksync(cluster: PgCluster, processes: int, run: int) -> tuple[float, float]:
    url, _ = noop_queue(cluster, f"bench_chunksync_{processes}_{run}")
    # The queue turns completed in the statement after its last chunk's commit; counting
    # 20,000 chunks every 20 ms would itself take a fifth of a core from the drain.
    done = "SELECT 1 FROM queues WHERE status = 'completed'"
    return _timed(cluster, url, _chunksync_process, processes, done)


def sql_ceiling(cluster: PgCluster, clients: int, run: int) -> float:
    """The worker's own SQL through pgbench, `clients` clients (benchmarks/pg_ceiling.py)."""
    url, queue_id = noop_queue(cluster, f"bench_ceiling_{clients}_{run}")
    return ceiling(cluster, url, queue_id, N_CHUNKS, clients)


# --- pgqueuer ---------------------------------------------------------------------------------


def _pgqueuer_process(url: str, ready: Event, go: Event, stop: Event) -> None:
    from pgqueuer.adapters.drivers.psycopg import PsycopgDriver
    from pgqueuer.domain.types import QueueExecutionMode
    from pgqueuer.models import Job
    from pgqueuer.qm import QueueManager
    from pgqueuer.queries import Queries

    async def run() -> None:
        conn = await psycopg.AsyncConnection.connect(url, autocommit=True)
        qm = QueueManager(Queries(PsycopgDriver(conn)))

        @qm.entrypoint("noop")
        async def noop(job: Job) -> None:
            return None

        ready.set()
        await asyncio.to_thread(go.wait)
        await qm.run(
            batch_size=BATCH,
            mode=QueueExecutionMode.drain,
            dequeue_timeout=timedelta(seconds=POLL_SECONDS),
        )
        await conn.close()

    asyncio.run(run())


def drain_pgqueuer(cluster: PgCluster, processes: int, run: int = 0) -> tuple[float, float]:
    from pgqueuer.adapters.drivers.psycopg import PsycopgDriver
    from pgqueuer.queries import Queries

    url = cluster.create_database(f"bench_pgqueuer_{processes}_{run}")

    async def setup() -> None:
        conn = await psycopg.AsyncConnection.connect(url, autocommit=True)
        queries = Queries(PsycopgDriver(conn))
        await queries.install()
        await queries.enqueue(["noop"] * N_CHUNKS, [None] * N_CHUNKS, [0] * N_CHUNKS)
        await conn.close()

    asyncio.run(setup())
    done = "SELECT 1 WHERE NOT EXISTS (SELECT 1 FROM pgqueuer)"
    return _timed(cluster, url, _pgqueuer_process, processes, done)


# --- procrastinate ----------------------------------------------------------------------------


def _procrastinate_app(url: str) -> Any:
    import procrastinate

    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=url))

    @app.task(name="noop")
    def noop() -> None:
        return None

    return app


def _procrastinate_process(url: str, ready: Event, go: Event, stop: Event) -> None:
    app = _procrastinate_app(url)
    with app.open():
        ready.set()
        go.wait()
        app.run_worker(
            wait=False,
            concurrency=4,
            fetch_job_polling_interval=POLL_SECONDS,
            delete_jobs="never",
            install_signal_handlers=False,
        )


def drain_procrastinate(cluster: PgCluster, processes: int) -> float:
    url = cluster.create_database("bench_procrastinate")
    app = _procrastinate_app(url)
    with app.open():
        app.schema_manager.apply_schema()
        task = app.tasks["noop"]
        for start in range(0, N_CHUNKS, 1000):
            task.batch_defer(*({} for _ in range(min(1000, N_CHUNKS - start))))
    done = (
        "SELECT 1 WHERE NOT EXISTS (SELECT 1 FROM procrastinate_jobs "
        "WHERE status IN ('todo', 'doing'))"
    )
    return _timed(cluster, url, _procrastinate_process, processes, done)[0]


# --- the clock --------------------------------------------------------------------------------


def _timed(
    cluster: PgCluster,
    url: str,
    target: Callable[[str, Event, Event, Event], None],
    processes: int,
    done: str,
    before: str | None = None,
) -> tuple[float, float]:
    """Settle the server (pg_ceiling.settle), start the processes, wait until every one is
    ready, then time the drain: jobs per second, and PostgreSQL's CPU per job in microseconds
    over the same window (every backend's: the workers', their other connections', this
    wait's; and the server's own processes). `before` runs just before the start signal."""
    settle(cluster, url)
    ctx = multiprocessing.get_context("spawn")
    go, stop = ctx.Event(), ctx.Event()
    readies = [ctx.Event() for _ in range(processes)]
    procs = [ctx.Process(target=target, args=(url, r, go, stop)) for r in readies]
    for p in procs:
        p.start()
    try:
        for r in readies:
            if not r.wait(120):
                raise RuntimeError("a worker process did not start")
        # One connection for the whole wait: a connection per check would fork a backend 50
        # times a second, a few per cent of the machine taken from whichever queue drains.
        with psycopg.connect(url, autocommit=True) as conn:
            if before is not None:
                conn.execute(before.encode())
            ticks, started = postgres_cpu_ticks(), time.perf_counter()
            go.set()
            deadline = time.monotonic() + TIMEOUT_SECONDS
            while not conn.execute(done.encode()).fetchone():
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the drain did not finish within {TIMEOUT_SECONDS} s")
                time.sleep(DONE_POLL_SECONDS)
            elapsed = time.perf_counter() - started
            ticks = postgres_cpu_ticks() - ticks
    finally:
        stop.set()
        for p in procs:
            p.join(30)
            if p.is_alive():
                p.kill()
    return N_CHUNKS / elapsed, ticks / os.sysconf("SC_CLK_TCK") / N_CHUNKS * 1e6


def main() -> int:
    import pgqueuer
    import procrastinate

    pgq_version = getattr(pgqueuer, "__version__", "?")
    pro_version = getattr(procrastinate, "__version__", "?")
    ours: dict[int, list[float]] = {n: [] for n in PROCESS_COUNTS}
    cpu: dict[int, list[float]] = {n: [] for n in PROCESS_COUNTS}
    server: dict[int, list[float]] = {n: [] for n in PROCESS_COUNTS}
    pgq: dict[int, list[float]] = {n: [] for n in PROCESS_COUNTS}
    pgq_server: dict[int, list[float]] = {n: [] for n in PROCESS_COUNTS}
    sql: dict[int, list[float]] = {n: [] for n in PROCESS_COUNTS}
    with throwaway(durable=True) as cluster:
        print(f"{N_CHUNKS} no-op jobs each, PostgreSQL 15 durable, {os.cpu_count()} CPUs")
        one = drain_chunksync(cluster, 1)
        for run in range(REPEATS):  # in turns, so that a slow spell of the machine hits all
            for n in PROCESS_COUNTS:
                rate, cpu_us, server_us = drain_chunksync_cpu(cluster, n, run)
                ours[n].append(rate)
                cpu[n].append(cpu_us)
                server[n].append(server_us)
                rate, server_us = drain_pgqueuer(cluster, n, run)
                pgq[n].append(rate)
                pgq_server[n].append(server_us)
                sql[n].append(sql_ceiling(cluster, n, run))
        procrastinate_rate = drain_procrastinate(cluster, PEER_PROCESSES)
    print(f"{'chunksync, 1 process':<44} {one:>10.0f} jobs/s")
    # Each system's median at each count, taken once: the table, the best counts and the ratios.
    mid = {
        key: {n: statistics.median(values) for n, values in runs.items()}
        for key, runs in (("ours", ours), ("pgq", pgq), ("sql", sql))
    }
    for key, runs, name, unit in (
        ("ours", ours, "chunksync", "processes"),
        ("pgq", pgq, f"pgqueuer {pgq_version}", "processes"),
        ("sql", sql, "worker SQL via pgbench", "clients"),
    ):
        for n, values in runs.items():
            each = " ".join(f"{v:.0f}" for v in values)
            print(f"{f'{name}, {n} {unit}':<44} {mid[key][n]:>10.0f} jobs/s  {each}")
    print(f"{f'procrastinate {pro_version}, {PEER_PROCESSES} processes':<44} "
          f"{procrastinate_rate:>10.0f} jobs/s")  # fmt: skip
    best = max(PROCESS_COUNTS, key=mid["ours"].__getitem__)
    best_pgq = max(PROCESS_COUNTS, key=mid["pgq"].__getitem__)
    rate, ceiling_rate = mid["ours"][best], mid["sql"][best]
    print(f"machine_python_loop_ms={python_loop_ms():.0f}")
    print(f"pg_drain_1proc_chunks_per_s={one:.0f}")
    print(f"pg_drain_processes={best}")
    print(f"pgqueuer_processes={best_pgq}")
    print(f"pg_drain_chunks_per_s={rate:.0f}")
    print(f"ratio_vs_pgqueuer={rate / mid['pgq'][best_pgq]:.2f}")
    print(f"ratio_vs_procrastinate={rate / procrastinate_rate:.2f}")
    for n, values in cpu.items():  # each count: with 4, the workers and the server share 2 cores
        print(f"worker_cpu_us_per_chunk_{n}_processes={statistics.median(values):.1f}")
    print(f"worker_cpu_us_per_chunk={statistics.median(cpu[best]):.1f}")
    print(f"pg_server_cpu_us_per_chunk={statistics.median(server[best]):.1f}")
    print(f"pgqueuer_server_cpu_us_per_job={statistics.median(pgq_server[best_pgq]):.1f}")
    print(f"pg_sql_ceiling_chunks_per_s={ceiling_rate:.0f}")
    print(f"ratio_vs_sql_ceiling={rate / ceiling_rate:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
