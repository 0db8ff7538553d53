"""Fleet limits: four worker processes share one dependency's connection cap, rate limit and
gate, on PostgreSQL and on SQLite, against a local server that counts what it gets.

The server (benchmarks/counting_server.py) answers one call per connection after SERVICE_S and
records every call's time and how many it serves at once. One queue of N chunks leans on it;
its dependency is set to 3 connections, 200 calls/s and a burst of BURST. Four worker processes
run the real CLI (`chunksync --app benchmarks.fleet_app:make_app worker --until-done`) as two
"machines": two processes with 2 slots, then, a second later, two with 4 slots. When 40% of
the chunks are answered, the server resets every connection for OUTAGE_S seconds.

Figures (per backend, then the worst of both):
- dependency_cap_violations: times the server went from serving <= 3 calls to serving 4.
- rate_limit_overshoot: the most calls in any 1-second window (sliding, from every call's
  accept time) / 200 - 1.
- rate_limit_utilization: calls / (200 x time) over the moments a backlog exists (runnable
  chunks were pending at two polls 0.25 s apart) and calls flow: from the first call to the
  backlog's end, leaving out the outage and the recovery after it (server back up until its
  first answered call; that lag is `outage_recovery_s`, reported apart).
- outage_calls_per_probe_interval: calls into the outage after the gate shut (the dependency
  row's `gated_since`), divided by the probe slots the documented schedule allows from the
  shut to the outage's end (first probe 0.5 s after the shut, each interval twice the last,
  up to the policy's probe_interval_s, 1.5 s by default). About 1: one call
  per slot for the whole fleet; one per process would be about 4.

Every chunk must end completed and every chunk id answered by the server; each phase has a
deadline; workers and servers are stopped on any failure.

Env: CHUNKSYNC_BENCH_FLEET_CHUNKS (default 20000), CHUNKSYNC_BENCH_FLEET_BACKENDS
(default "postgres,sqlite"), CHUNKSYNC_BENCH_FLEET_BURST (default 2),
CHUNKSYNC_BENCH_FLEET_SERVICE_MS (default 3), CHUNKSYNC_BENCH_FLEET_OUTAGE_S (default 10).
"""

from __future__ import annotations

import bisect
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from benchmarks import fleet_app
from benchmarks.counting_server import Call, CountingServer

N_CHUNKS = int(os.environ.get("CHUNKSYNC_BENCH_FLEET_CHUNKS", "20000"))
BACKENDS = os.environ.get("CHUNKSYNC_BENCH_FLEET_BACKENDS", "postgres,sqlite").split(",")
CONNECTIONS = 3
RATE_PER_S = 200
# GCRA lets at most rate x 1 s + burst calls into any 1-second window; the target overshoot
# (2% = 4 calls) must also hold the spread between a chunk's claim (where its unit is taken)
# and its call. The default burst (rate/100 = 2) leaves half of it for that spread.
BURST = int(os.environ.get("CHUNKSYNC_BENCH_FLEET_BURST", "2"))
SERVICE_S = float(os.environ.get("CHUNKSYNC_BENCH_FLEET_SERVICE_MS", "3")) / 1000.0
OUTAGE_S = float(os.environ.get("CHUNKSYNC_BENCH_FLEET_OUTAGE_S", "10"))
OUTAGE_AT_FRACTION = 0.4
MACHINES = ((2, 2), (2, 4))  # (processes, slots each), started MACHINE_GAP_S apart
MACHINE_GAP_S = 1.0
POLL_S = float(
    os.environ.get("CHUNKSYNC_BENCH_FLEET_POLL_S", "0.05")
)  # the workers' poll: a slot that found the cap full tries again this soon
WATCH_S = 0.25
WATCH_OUTAGE_S = 0.05
WINDOW_S = 1.0
START_TIMEOUT_S = 90.0
# The run fails if the fleet averages under MIN_CALLS_PER_S (a tenth of the rate).
MIN_CALLS_PER_S = RATE_PER_S / 10.0
RUN_TIMEOUT_S = N_CHUNKS / MIN_CALLS_PER_S + OUTAGE_S + 180.0
STOP_TIMEOUT_S = 20.0
ROOT = Path(__file__).resolve().parents[1]


# --- reading the database --------------------------------------------------------------------


class Observer:
    """One connection of the benchmark's own, for reading what the workers did."""

    def __init__(self, url: str) -> None:
        self.sqlite = url.startswith("sqlite")
        self.conn: Any
        if self.sqlite:
            self.conn = sqlite3.connect(url.removeprefix("sqlite:///"), timeout=30)
        else:
            import psycopg

            self.conn = psycopg.connect(url, autocommit=True)

    def rows(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        if self.sqlite:
            return list(self.conn.execute(sql.replace("%s", "?"), params).fetchall())
        return list(self.conn.execute(sql.encode(), params or None).fetchall())

    def backlog(self, now: float) -> int:
        """Chunks pending and due: what the fleet could run now."""
        sql = "SELECT COUNT(*) FROM chunks WHERE status = 'pending' AND run_after <= %s"
        return int(self.rows(sql, now)[0][0])

    def gated_since(self, dependency: str) -> float | None:
        found = self.rows("SELECT gated_since FROM dependencies WHERE name = %s", dependency)
        return None if not found or found[0][0] is None else float(found[0][0])

    def close(self) -> None:
        self.conn.close()


# --- the run ----------------------------------------------------------------------------------


@dataclass
class Run:
    """What one backend's run saw."""

    backend: str
    dependency: str = ""
    samples: list[tuple[float, int]] = field(default_factory=list)  # (time, backlog)
    outage_start: float | None = None
    outage_end: float | None = None
    shut_at: float | None = None
    calls: list[Call] = field(default_factory=list)
    crossings: int = 0
    max_in_progress: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    lost: int = 0
    waits: tuple[int, ...] = ()  # the dependency row's counters: probes, cap, rate, gate waits
    elapsed_s: float = 0.0


def start_workers(url: str, logs: Path, stack: ExitStack) -> list[subprocess.Popen[bytes]]:
    """The two machines' worker processes, through the real CLI."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    app = "benchmarks.fleet_app:make_app"
    procs: list[subprocess.Popen[bytes]] = []
    for machine, (processes, slots) in enumerate(MACHINES):
        if machine:
            time.sleep(MACHINE_GAP_S)
        for n in range(processes):
            out: IO[bytes] = stack.enter_context((logs / f"worker-{machine}-{n}.log").open("wb"))
            command = [sys.executable, "-m", "chunksync", "--db", url, "--app", app, "worker"]
            options = ["-c", str(slots), "--poll", str(POLL_S), "--until-done"]
            procs.append(
                subprocess.Popen(
                    [*command, *options],
                    cwd=ROOT,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=env,
                )
            )
    return procs


def stop_workers(procs: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM (a graceful stop), then SIGKILL for any still there: none is left behind."""
    for p in procs:
        if p.poll() is None:
            p.terminate()
    deadline = time.monotonic() + STOP_TIMEOUT_S
    for p in procs:
        try:
            p.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(10)


def watch(run: Run, server: CountingServer, obs: Observer, procs: list[Any]) -> None:
    """Until every worker is done: sample the backlog, start and end the outage, and note when
    the gate shut."""
    started = time.monotonic()
    deadline = started + RUN_TIMEOUT_S
    first_call_by = started + START_TIMEOUT_S
    while any(p.poll() is None for p in procs):
        now = time.time()
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"{run.backend}: the run did not finish within {RUN_TIMEOUT_S:.0f} s"
            )
        if not server.answered_count() and time.monotonic() > first_call_by:
            raise RuntimeError(f"{run.backend}: no call within {START_TIMEOUT_S:.0f} s")
        run.samples.append((now, obs.backlog(now)))
        if run.outage_start is None and server.answered_count() >= OUTAGE_AT_FRACTION * N_CHUNKS:
            server.outage(True)
            run.outage_start = time.time()
        if run.outage_start is not None and run.outage_end is None:
            run.shut_at = run.shut_at or obs.gated_since(run.dependency)
            if time.time() >= run.outage_start + OUTAGE_S:
                server.outage(False)
                run.outage_end = time.time()
        during = run.outage_start is not None and run.outage_end is None
        time.sleep(WATCH_OUTAGE_S if during else WATCH_S)
    run.elapsed_s = time.monotonic() - started
    failed = [p.returncode for p in procs if p.returncode != 0]
    if failed:
        raise RuntimeError(f"{run.backend}: worker(s) exited with {failed}")


def check_every_chunk(run: Run, server: CountingServer, obs: Observer) -> None:
    """Every chunk completed, none dead, and every chunk id answered by the server."""
    run.statuses = dict(obs.rows("SELECT status, COUNT(*) FROM chunks GROUP BY status"))
    ids = {str(r[0]) for r in obs.rows("SELECT id FROM chunks")}
    calls, answered, most, crossings = server.snapshot()
    run.calls, run.max_in_progress, run.crossings = calls, most, crossings[CONNECTIONS]
    run.lost = len(ids - answered)
    counters = "SELECT probes, cap_waits, rate_waits, gate_waits FROM dependencies WHERE name = %s"
    run.waits = tuple(int(v) for v in obs.rows(counters, run.dependency)[0])
    if run.statuses != {"completed": N_CHUNKS} or run.lost or len(ids) != N_CHUNKS:
        raise RuntimeError(
            f"{run.backend}: chunks {run.statuses}, {run.lost} never answered by the server"
        )


def run_backend(backend: str, url: str, logs: Path) -> Run:
    run = Run(backend)
    with ExitStack() as stack:
        server = CountingServer(SERVICE_S, caps=(CONNECTIONS,)).start()
        stack.callback(server.stop)
        source = f"{fleet_app.KIND}://127.0.0.1:{server.port}/calls"
        with fleet_app.make_app(url) as app:
            run.dependency = app.registry.dependency_of(source, fleet_app.KIND)
            app.dependency(
                run.dependency, connections=CONNECTIONS, rate=f"{RATE_PER_S}/s", burst=BURST
            )
            payloads = ({"n": i} for i in range(N_CHUNKS))
            app.create_queue(source, payloads=payloads, policy=fleet_app.POLICY)
        obs = Observer(url)
        stack.callback(obs.close)
        procs: list[subprocess.Popen[bytes]] = []
        stack.callback(stop_workers, procs)
        procs.extend(start_workers(url, logs, stack))
        try:
            watch(run, server, obs, procs)
        except BaseException:
            server.outage(False)
            _show_logs(logs)
            raise
        check_every_chunk(run, server, obs)
    return run


def _show_logs(logs: Path) -> None:
    for path in sorted(logs.glob("*.log")):
        tail = path.read_text(errors="replace").splitlines()[-15:]
        print(f"--- {path.name}\n" + "\n".join(tail), file=sys.stderr)


@contextmanager
def database(backend: str, tmp: Path) -> Iterator[str]:
    """A fresh database: a durable throwaway PostgreSQL cluster, or a SQLite file."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp / 'fleet.db'}"
        return
    from tests.servers.pgcluster import throwaway

    with throwaway(durable=True) as cluster:
        yield cluster.create_database("bench_fleet")


# --- the figures ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Figures:
    cap_violations: int
    max_connections: int
    overshoot: float
    worst_window_calls: int
    utilization: float
    outage_ratio: float | None
    outage_calls_after_shut: int
    outage_calls_before_shut: int
    probe_slots: int
    recovery_s: float | None
    calls: int


def worst_window(times: list[float], width_s: float = WINDOW_S) -> int:
    """The most calls in any window [t, t + width_s) that starts at a call."""
    most, lo = 0, 0
    for hi, t in enumerate(times):
        while times[lo] <= t - width_s:
            lo += 1
        most = max(most, hi - lo + 1)
    return most


def probe_slots(span_s: float, stress: Any) -> int:
    """Probes the gate's documented schedule allows in `span_s` seconds after it shut: the
    first after probe_min_interval_s, each interval twice the last, up to probe_interval_s."""
    interval = min(stress.probe_min_interval_s, stress.probe_interval_s)
    at, slots = interval, 0
    while at <= span_s:
        slots += 1
        grown = min(stress.probe_interval_s, max(interval * 2.0, stress.probe_min_interval_s))
        at, interval = at + interval, grown
    return slots


def utilization(run: Run, times: list[float], recovered_at: float | None) -> float:
    """Calls / (rate x time) over the polls where a backlog existed and calls could flow."""
    first = times[0]
    skip = (run.outage_start or 1e18, recovered_at or run.outage_end or 1e18)
    calls = seconds = 0.0
    for (t0, b0), (t1, b1) in zip(run.samples, run.samples[1:], strict=False):
        if b0 <= 0 or b1 <= 0 or t0 < first or (t1 > skip[0] and t0 < skip[1]):
            continue
        calls += bisect.bisect_left(times, t1) - bisect.bisect_left(times, t0)
        seconds += t1 - t0
    return calls / (RATE_PER_S * seconds) if seconds else 0.0


def figures(run: Run) -> Figures:
    times = sorted(c.at for c in run.calls)
    start, end = run.outage_start or 0.0, run.outage_end or 0.0
    refused = [c.at for c in run.calls if c.refused]
    shut = run.shut_at
    after = [t for t in refused if shut is not None and t >= shut]
    slots = probe_slots(end - shut, fleet_app.fleet_policy().stress) if shut else 0
    recovered = next((c.at for c in run.calls if not c.refused and c.at >= end), None)
    most = worst_window(times)
    return Figures(
        cap_violations=run.crossings,
        max_connections=run.max_in_progress,
        overshoot=most / (RATE_PER_S * WINDOW_S) - 1.0,
        worst_window_calls=most,
        utilization=utilization(run, times, recovered),
        outage_ratio=len(after) / slots if slots else None,
        outage_calls_after_shut=len(after),
        outage_calls_before_shut=len(
            [t for t in refused if start <= t and (shut is None or t < shut)]
        ),
        probe_slots=slots,
        recovery_s=None if recovered is None else recovered - end,
        calls=len(times),
    )


def show(backend: str, run: Run, f: Figures) -> None:
    recovery = "n/a" if f.recovery_s is None else f"{f.recovery_s:.2f}"
    gate = (
        "never shut"
        if run.shut_at is None
        else f"shut {run.shut_at - (run.outage_start or 0):.2f} s in"
    )
    print(
        f"{backend}: {N_CHUNKS} chunks in {run.elapsed_s:.1f} s, {f.calls} calls, "
        f"chunks {run.statuses}, lost {run.lost}\n"
        f"  claims: probes {run.waits[0]}, waits for connections {run.waits[1]}, rate "
        f"{run.waits[2]}, gate {run.waits[3]}\n"
        f"  connections: most at once {f.max_connections}, times above {CONNECTIONS}: "
        f"{f.cap_violations}\n"
        f"  rate: worst 1 s window {f.worst_window_calls} calls "
        f"(overshoot {f.overshoot:+.3f}), utilization {f.utilization:.3f}\n"
        f"  outage {OUTAGE_S:.0f} s: gate {gate}, calls before the shut "
        f"{f.outage_calls_before_shut}, after {f.outage_calls_after_shut} over "
        f"{f.probe_slots} probe slots, recovery {recovery} s",
        flush=True,
    )
    key = backend.replace("postgres", "pg")
    ratio = "nan" if f.outage_ratio is None else f"{f.outage_ratio:.2f}"
    print(f"{key}_dependency_cap_violations={f.cap_violations}")
    print(f"{key}_rate_limit_overshoot={f.overshoot:.3f}")
    print(f"{key}_rate_limit_utilization={f.utilization:.3f}")
    print(f"{key}_outage_calls_per_probe_interval={ratio}", flush=True)


def worst(all_figures: list[Figures]) -> None:
    ratios = [f.outage_ratio for f in all_figures]
    ratio = "nan" if None in ratios else f"{max(r for r in ratios if r is not None):.2f}"
    print(f"outage_calls_per_probe_interval={ratio}")
    print(f"rate_limit_utilization={min(f.utilization for f in all_figures):.3f}")
    print(f"rate_limit_overshoot={max(f.overshoot for f in all_figures):.3f}")
    print(f"dependency_cap_violations={max(f.cap_violations for f in all_figures)}")


def main() -> int:
    print(
        f"fleet limits: {N_CHUNKS} chunks, {CONNECTIONS} connections, {RATE_PER_S}/s, "
        f"burst {BURST}, service {SERVICE_S * 1000:.0f} ms, outage {OUTAGE_S:.0f} s, "
        f"machines {MACHINES}, {os.cpu_count()} CPUs",
        flush=True,
    )
    results: list[Figures] = []
    for backend in BACKENDS:
        with tempfile.TemporaryDirectory(prefix="chunksync-fleet-") as tmp:
            logs = Path(tmp)
            with database(backend, logs) as url:
                run = run_backend(backend, url, logs)
        f = figures(run)
        show(backend, run, f)
        results.append(f)
    worst(results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
