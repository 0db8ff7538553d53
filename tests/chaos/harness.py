"""One chaos run: a queue of chunks, worker processes, faults at seeded random moments.

Faults (each logged with its wall-clock time, which both databases' clocks share here):

- `kill_worker`: SIGKILL one worker process at random, start a new one at once;
- `pause_worker`: SIGSTOP one worker for twice its lease, then SIGCONT: its chunks are taken
  over meanwhile, and what it writes when it wakes must be refused (`lost_lease`);
- `pg_restart`: stop PostgreSQL (immediate mode, like a crash) for a moment, then start it;
- the handler itself fails at a configured rate with every category (tests/chaos/app.py).

The chaos queue belongs to a tenant with an in-flight quota below the fleet's slots: the quota
is full while the faults strike, and the harness samples the tenant's chunks in flight.

A worker that exits on its own is not a fault we injected: it is counted (`worker_exits`), its
log kept, and a replacement started, so that the run still ends and the checks can say why.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chunksync.exceptions import ChunksyncError
from chunksync.models import DEFAULT_TENANT, ChunkStatus, QueueStatus
from chunksync.sources.mail import mail_source, plan_sync
from chunksync.store import MessageStore
from tests.chaos import app as chaos_app
from tests.chaos.mail import KINDS as MAIL_KINDS
from tests.chaos.mail import MailSide, MailVerdict
from tests.chaos.watching import WatchVerdict, watch_phase
from tests.servers.pgcluster import PgCluster

ROOT = Path(__file__).resolve().parents[2]
FINISHED = frozenset({QueueStatus.COMPLETED, QueueStatus.FAILED, QueueStatus.CANCELLED})
STOP_TIMEOUT_SECONDS = 60.0
CHECK_EVERY_SECONDS = 0.2
CHAOS_TENANT = "chaos-tenant"


@dataclass(frozen=True, slots=True)
class ChaosConfig:
    backend: str  # "sqlite" or "postgres"
    chunks: int = 20_000
    workers: int = 3
    concurrency: int = 2
    lease_s: float = 2.0
    poll_s: float = 0.2
    failure_rate: float = chaos_app.DEFAULT_FAILURE_RATE
    seed: int = 7
    work_ms: float = 20.0  # each success takes this long: faults then strike chunks in flight
    fault_gap_s: tuple[float, float] = (1.5, 4.0)  # between two faults, uniform
    pg_down_s: tuple[float, float] = (0.5, 3.0)  # how long PostgreSQL stays down
    pg_restart_weight: float = 0.3  # share of faults that restart PostgreSQL (when it is used)
    pause_weight: float = 0.3  # share of the other faults that pause a worker (else kill one)
    timeout_s: float = 1800.0
    # Faults stop this long before the deadline: the run must heal in it. Faults aimed at the
    # mail path every second or two can keep its last chunk failing, deferred by the stress
    # gate, for as long as they go on; a run that only ends when they do proves nothing. The
    # mail policy's next try may be 240 s away (a stressed retry: its 120 s cap, doubled).
    heal_s: float = 300.0
    imap_messages: int = 0  # > 0: also sync this many messages from Dovecot, through the proxy
    imap_chunk: int = 100  # messages per chunk
    imap_timeout_s: int = 3  # the IMAP socket timeout the stalls outlast
    imap_connections: int = 2  # per worker process
    imap_rate: float = 150_000.0  # bytes/s per connection through the proxy, a WAN link
    mail_weight: float = 0.7  # share of faults aimed at the mail path while its queue runs
    mail_faults: tuple[str, ...] = MAIL_KINDS
    mail_time_scale: float = 1.0  # the mail queue's (default) policy delays x this, in workers
    connections: int | None = 4  # the chaos queue's dependency capped so (None: no cap)
    watch_appends: int = 0  # > 0 (with imap_messages): then watch while appending this many
    # The chaos queue belongs to a tenant held to this many chunks in flight across the fleet
    # (None: the default tenant, no quota): below the slots, so the quota is full while workers
    # are killed and frozen.
    tenant_quota: int | None = 3


@dataclass(frozen=True, slots=True)
class Fault:
    kind: str
    at: float  # time.time() when it struck
    detail: str = ""
    pid: int | None = None  # the worker killed


@dataclass(slots=True)
class RunResult:
    config: ChaosConfig
    url: str
    queue_id: str
    effects: Path
    faults: list[Fault] = field(default_factory=list)
    worker_exits: list[str] = field(default_factory=list)  # workers that died on their own
    worker_logs: list[Path] = field(default_factory=list)
    started_at: float = 0.0
    finished_at: float = 0.0
    timed_out: bool = False
    faults_stopped: bool = False  # the heal window began before the queues finished
    stop_codes: list[int | None] = field(default_factory=list)
    mail_queue_id: str | None = None
    mail: MailVerdict | None = None
    proxy_counts: dict[str, int] = field(default_factory=dict)
    watch: WatchVerdict | None = None
    tenant_in_flight: list[int] = field(default_factory=list)  # sampled while the run drives
    kills_at_full_quota: int = 0  # workers killed while the tenant's quota was full

    @property
    def killed_pids(self) -> set[int]:
        return {f.pid for f in self.faults if f.pid is not None}


class RestartablePg(PgCluster):
    """A durable throwaway cluster (fsync on: an immediate stop must lose no commit)."""

    def __init__(self) -> None:
        super().__init__(durable=True)

    def restart(self, down_s: float, mode: str = "immediate") -> None:
        assert self.root is not None
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")
        time.sleep(down_s)  # the outage itself, not a wait for some state
        log = str(self.root / "server.log")
        self._run("pg_ctl", "-D", str(self.data), "-l", log, "-w", "-t", "60", "start")


def worker_pid(worker_id: str) -> int | None:
    """The pid in a worker's id (host:pid:suffix, chunksync.runtime.worker), if it has one."""
    parts = worker_id.split(":")
    return int(parts[-2]) if len(parts) >= 3 and parts[-2].isdigit() else None


class ChaosRun:
    def __init__(
        self,
        config: ChaosConfig,
        url: str,
        workdir: Path,
        *,
        pg: RestartablePg | None = None,
        say: Callable[[str], None] = lambda line: None,
    ) -> None:
        self.config = config
        self.url = url
        self.workdir = workdir
        self.pg = pg
        self.say = say
        self.rng = random.Random(config.seed)
        self.procs: list[subprocess.Popen[bytes]] = []
        self.effects = workdir / "effects.log"
        self.calls = workdir / "calls.log"
        self.env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
            chaos_app.EFFECTS_ENV: str(self.effects),
            chaos_app.FAILURE_RATE_ENV: str(config.failure_rate),
            chaos_app.SEED_ENV: str(config.seed),
            chaos_app.MAIL_TIME_SCALE_ENV: str(config.mail_time_scale),
            chaos_app.CONNECTIONS_ENV: str(config.connections or ""),
            chaos_app.CALLS_ENV: str(self.calls),
        }
        self._spawned = 0
        self.mail: MailSide | None = None
        self._app: Any = None  # the run's App, once _drive has it: whose workers hold chunks

    # --- workers -----------------------------------------------------------------

    def start_worker(
        self, result: RunResult, env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        """One worker process; `env`: its environment instead of the run's (another release's
        code first on its path)."""
        self._spawned += 1
        log_path = self.workdir / f"worker-{self._spawned:03d}.log"
        result.worker_logs.append(log_path)
        c = self.config
        command = [
            *(sys.executable, "-m", "chunksync", "--db", self.url),
            *("--app", "tests.chaos.app:make_app", "worker"),
            *("--concurrency", str(c.concurrency), "--lease", str(c.lease_s)),
            *("--poll", str(c.poll_s)),
        ]
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                command, cwd=ROOT, env=env or self.env, stdout=log, stderr=subprocess.STDOUT
            )
        self.procs.append(proc)
        return proc

    def _replace_exited(self, result: RunResult) -> None:
        for proc in list(self.procs):
            code = proc.poll()
            if code is not None:
                self.procs.remove(proc)
                result.worker_exits.append(f"pid {proc.pid} exited with {code} on its own")
                self.say(f"  worker {proc.pid} exited on its own ({code}): starting another")
                self.start_worker(result)

    def stop_all(self, result: RunResult) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        for proc in self.procs:
            try:
                result.stop_codes.append(proc.wait(max(0.1, deadline - time.monotonic())))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
                result.stop_codes.append(None)
        self.procs.clear()

    # --- faults -----------------------------------------------------------------

    def _kinds(self) -> list[str]:
        kinds = ["kill_worker", "pause_worker"]
        kinds += ["pg_restart"] if self.pg is not None else []
        return kinds + (list(self.config.mail_faults) if self.mail is not None else [])

    def _next_kind(self, first: list[str], done: set[str], mail_active: bool) -> str:
        """Every kind at least once, in a seeded order, then at random; faults on the mail path
        only while its queue runs (it runs first), and then mostly those."""
        order = sorted(first, key=lambda k: k not in MAIL_KINDS) if mail_active else first
        for kind in order:
            if kind not in done and (mail_active or kind not in MAIL_KINDS):
                return kind
        if mail_active and self.rng.random() < self.config.mail_weight:
            return self.rng.choice(self.config.mail_faults)
        if self.pg is not None and self.rng.random() < self.config.pg_restart_weight:
            return "pg_restart"
        return "pause_worker" if self.rng.random() < self.config.pause_weight else "kill_worker"

    def _victim(self, live: list[subprocess.Popen[bytes]]) -> subprocess.Popen[bytes]:
        """A worker to kill or freeze, at random among those holding a chunk now (else among all):
        a victim holding nothing leaves nothing to heal, and whether one did hung on which
        worker's batch the tenant's quota had let in, so the run's recoveries were down to luck."""
        holding: set[int] = set()
        if self._app is not None:
            try:
                chunks = self._app.manager.list_chunks(status=ChunkStatus.PROCESSING, limit=1000)
            except ChunksyncError:  # the database is down for a moment
                chunks = []
            holding = {pid for c in chunks if (pid := worker_pid(c.worker_id or "")) is not None}
        holders = [p for p in live if p.pid in holding]
        return self.rng.choice(holders or live)

    def inject(self, kind: str, result: RunResult) -> None:
        if kind == "kill_worker":
            live = [p for p in self.procs if p.poll() is None]
            if not live:
                return
            victim = self._victim(live)
            at = time.time()
            victim.send_signal(signal.SIGKILL)
            victim.wait(10)
            self.procs.remove(victim)
            result.faults.append(Fault(kind, at, f"SIGKILL pid {victim.pid}", victim.pid))
            self.start_worker(result)
        elif kind == "pause_worker":
            live = [p for p in self.procs if p.poll() is None]
            if not live:
                return
            victim = self._victim(live)
            pause = 2 * self.config.lease_s + self.config.poll_s
            at = time.time()
            victim.send_signal(signal.SIGSTOP)
            time.sleep(pause)  # the freeze itself, not a wait for some state
            victim.send_signal(signal.SIGCONT)
            result.faults.append(Fault(kind, at, f"SIGSTOP pid {victim.pid} for {pause:.1f} s"))
        elif kind in MAIL_KINDS:
            assert self.mail is not None
            at = time.time()
            result.faults.append(Fault(kind, at, self.mail.inject(kind)))
        elif kind == "pg_restart":
            assert self.pg is not None
            down = self.rng.uniform(*self.config.pg_down_s)
            at = time.time()
            self.pg.restart(down)
            result.faults.append(Fault(kind, at, f"down {down:.1f} s"))
        self.say(
            f"  fault {len(result.faults)}: {result.faults[-1].kind} {result.faults[-1].detail}"
        )

    # --- the run -----------------------------------------------------------------

    def run(self) -> RunResult:
        try:
            if self.config.imap_messages:
                self.say(f"  delivering {self.config.imap_messages} messages to Dovecot")
                c = self.config
                self.mail = MailSide(
                    c.imap_messages, c.seed, c.imap_timeout_s, c.imap_connections, c.imap_rate
                )
                self.mail.start()
                os.environ.update(self.mail.env())  # for planning, here
                self.env.update(self.mail.env())  # for the workers
            return self._run()
        finally:
            if self.mail is not None:
                self.mail.close()

    def _run(self) -> RunResult:
        with chaos_app.make_app(self.url) as app:
            if self.config.connections is not None:  # the row takes it when it is made
                app.dependency(chaos_app.DEPENDENCY, connections=self.config.connections)
            mail_queue_id = None
            if self.mail is not None:  # planned first: its chunks are claimed first
                source = mail_source(app, self.mail.uri)
                [planned] = plan_sync(
                    app, source, [self.mail.uri], chunk_size=self.config.imap_chunk
                )
                mail_queue_id = planned.queue_id
            sleep_s = self.config.work_ms / 1000.0
            payloads = ({"n": n, "sleep_s": sleep_s} for n in range(self.config.chunks))
            tenant = DEFAULT_TENANT
            if self.config.tenant_quota is not None:
                tenant = CHAOS_TENANT
                quota = self.config.tenant_quota
                app.manager.tenants.set(tenant, actor="chaos", reason="run", max_in_flight=quota)
            queue = app.create_queue(
                chaos_app.SOURCE, payloads, name="chaos", policy=chaos_app.POLICY, tenant=tenant
            )
            result = RunResult(self.config, self.url, queue.id, self.effects)
            result.mail_queue_id = mail_queue_id
            result.started_at = time.time()
            try:
                self._drive(app, result)
            finally:
                self.stop_all(result)
            result.finished_at = time.time()
            if self.mail is not None:
                rows = MessageStore(app.backend).iter_messages()
                stored = {(r["folder"], int(r["uid"])): bytes(r["raw"]) for r in rows}
                result.mail = self.mail.check(stored)
                if self.config.watch_appends:
                    appends = self.config.watch_appends
                    result.watch = watch_phase(app, self.mail, self.rng, appends, self.say)
                result.proxy_counts = self.mail.counts()
        return result

    def _drive(self, app: Any, result: RunResult) -> None:
        c = self.config
        self._app = app
        for _ in range(c.workers):
            self.start_worker(result)
        first = self._kinds()
        self.rng.shuffle(first)
        deadline = time.monotonic() + c.timeout_s
        faults_until = deadline - c.heal_s
        next_fault = time.monotonic() + self.rng.uniform(*c.fault_gap_s)
        queues = [q for q in (result.queue_id, result.mail_queue_id) if q is not None]
        while True:
            if all(self._finished(app, q) for q in queues):
                return
            if time.monotonic() > deadline:
                result.timed_out = True
                return
            self._replace_exited(result)
            full = self._sample_tenant(app, result)
            if time.monotonic() >= faults_until:
                result.faults_stopped = True
            elif full and not result.kills_at_full_quota:  # once at least: a kill at full quota
                self.inject("kill_worker", result)
                result.kills_at_full_quota += 1
                next_fault = time.monotonic() + self.rng.uniform(*c.fault_gap_s)
            elif time.monotonic() >= next_fault:
                mail_active = result.mail_queue_id is not None and not self._finished(
                    app, result.mail_queue_id
                )
                done = {f.kind for f in result.faults}
                kind = self._next_kind(first, done, mail_active)
                self.inject(kind, result)
                result.kills_at_full_quota += kind == "kill_worker" and full
                next_fault = time.monotonic() + self.rng.uniform(*c.fault_gap_s)
            time.sleep(CHECK_EVERY_SECONDS)  # the harness's own pace, between two looks

    def _sample_tenant(self, app: Any, result: RunResult) -> bool:
        """Sample the chaos tenant's chunks in flight, as its quota counts them (the
        database's); whether its quota is full now."""
        if self.config.tenant_quota is None:
            return False
        try:
            loads = app.manager.tenants.all()
        except ChunksyncError:  # the database is down for a moment
            return False
        now = [t.in_flight for t in loads if t.policy.id == CHAOS_TENANT]
        result.tenant_in_flight += now
        return now == [self.config.tenant_quota]

    @staticmethod
    def _finished(app: Any, queue_id: str) -> bool:
        try:
            return app.manager.get_queue(queue_id).status in FINISHED
        except ChunksyncError:  # the database is down for a moment: look again later
            return False
