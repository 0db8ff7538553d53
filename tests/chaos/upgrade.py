"""The rolling upgrade: the previous release's workers and this code's on one PostgreSQL.

The previous release is `tests/upgrade/chunksync-<version>.tar.gz`, the `git archive` of its
tag's `src/chunksync` (kept in the tree: a clone made without history or tags still has it;
`tests/unit/test_previous_release.py` checks it against the tag wherever the tag is there).
Its workers run the same application (`tests/chaos/app.py`) with that code first on their
path, in production mode (`CHUNKSYNC_MIGRATE=never`), as a fleet would.

The run: the previous release makes the schema and the queue; two of its workers drain; this
code's `chunksync migrate` runs (an expand migration, built concurrently) while they do; this
code's workers join, and one more worker of the previous release starts against the migrated
database; the previous release's workers are stopped (SIGTERM); this code's finish the queue.
Meanwhile a probe takes, every 50 ms, the locks a claim takes (ROW EXCLUSIVE on queues,
chunks and attempts) under a lock timeout of CLAIM_WAIT_LIMIT_S, counting the claims it held up
(the server's clock decides, not a starved thread's), and samples every session waiting on a
table's lock, for how long by the server's clock.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tarfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from tests.acceptance.test_cli import run
from tests.chaos import app as chaos_app
from tests.chaos.checks import Verdict, check, fetch
from tests.chaos.harness import ROOT, ChaosConfig, ChaosRun, RunResult, worker_pid
from tests.servers.pgcluster import PgCluster

PREVIOUS = "0.1.0"
PREVIOUS_TAG = f"v{PREVIOUS}"
PREVIOUS_COMMIT = "cdd6ef1af4eb360061621673ba672084f06fef48"
ARCHIVE = ROOT / "tests" / "upgrade" / f"chunksync-{PREVIOUS}.tar.gz"
PROBE_EVERY_S = 0.05
TIMEOUT_S = 240.0
CLAIM_WAIT_LIMIT_S = 1.0  # the longest a claim may wait for a lock while the migration runs


@dataclass(slots=True)
class UpgradeRun:
    result: RunResult
    verdict: Verdict | None = None
    versions: dict[str, int] = field(default_factory=dict)  # "previous"/"current": its schema
    plan: str = ""  # `chunksync migrate --plan` before the migration, by this code
    migrated_in_s: float = 0.0
    old_pids: set[int] = field(default_factory=set)
    late_old_pid: int = 0  # the previous release's worker started after the migration
    new_pids: set[int] = field(default_factory=set)
    done_by_pid: Counter[int] = field(default_factory=Counter)  # effects per worker process
    old_stop_codes: list[int | None] = field(default_factory=list)
    claims_held_up: int = 0  # the probe's claims that waited CLAIM_WAIT_LIMIT_S for a lock
    longest_claim_wait_s: float = 0.0  # the probe's, by its own clock (a figure)
    longest_lock_wait_s: float = 0.0  # a table lock's, any session's but the migration's
    phases: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        v = self.verdict
        return bool(
            v is not None and v.ok and v.chunks == self.result.config.chunks
            and self.claims_held_up == 0
            and all(code == 0 for code in self.old_stop_codes)
        )  # fmt: skip

    def figures(self) -> str:
        """The run's name=value line."""
        v = self.verdict
        return (
            f"rolling_chunks={self.result.config.chunks} rolling_lost={v.lost if v else '?'}"
            f" rolling_duplicated={v.duplicated if v else '?'}"
            f" rolling_migrate_s={self.migrated_in_s:.2f}"
            f" rolling_claims_held_up={self.claims_held_up}"
            f" rolling_longest_claim_wait_s={self.longest_claim_wait_s:.3f}"
            f" rolling_longest_lock_wait_s={self.longest_lock_wait_s:.3f}"
            f" rolling_by_previous={sum(self.done_by_pid[p] for p in self.old_pids)}"
            f" rolling_by_current={sum(self.done_by_pid[p] for p in self.new_pids)}"
        )


def previous_release(into: Path) -> Path:
    """Unpack the previous release; the directory to put first on PYTHONPATH."""
    with tarfile.open(ARCHIVE) as archive:
        if hasattr(tarfile, "data_filter"):  # Python 3.11.4 and later
            archive.extractall(into, filter="data")
        else:  # our own archive, made by `make previous-release`
            archive.extractall(into)
    return into / f"chunksync-{PREVIOUS}" / "src"


class ClaimProbe(threading.Thread):
    """Takes a claim's locks every 50 ms, gives up (held up) after CLAIM_WAIT_LIMIT_S, and
    samples the longest wait for a table's lock."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.halt = threading.Event()
        self.claims_held_up = 0
        self.longest_claim_wait_s = 0.0
        self.longest_lock_wait_s = 0.0

    def run(self) -> None:
        with psycopg.connect(self.url, autocommit=True, application_name="probe") as conn:
            conn.execute(f"SET lock_timeout = '{int(CLAIM_WAIT_LIMIT_S * 1000)}ms'")
            while not self.halt.wait(PROBE_EVERY_S):
                began = time.monotonic()
                try:
                    with conn.transaction():
                        conn.execute("LOCK TABLE queues, chunks, attempts IN ROW EXCLUSIVE MODE")
                except psycopg.errors.LockNotAvailable:
                    self.claims_held_up += 1
                waited = time.monotonic() - began
                self.longest_claim_wait_s = max(self.longest_claim_wait_s, waited)
                # Waits for a table's lock (not workers' turns on a row), by the server's clock.
                row = conn.execute(
                    "SELECT coalesce(max(extract(epoch FROM clock_timestamp() - l.waitstart)), 0)"
                    " FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
                    " WHERE NOT l.granted AND l.locktype = 'relation'"
                    " AND a.datname = current_database() AND l.pid <> pg_backend_pid()"
                    " AND a.query NOT ILIKE '%INDEX CONCURRENTLY%'"
                ).fetchone()
                self.longest_lock_wait_s = max(self.longest_lock_wait_s, float(row[0]))  # type: ignore[index]


def run_standalone(workdir: Path, chunks: int) -> UpgradeRun:
    """`make chaos`'s rolling upgrade: on a durable cluster of its own, as a plain owner."""
    pg = PgCluster(durable=True).start()
    try:
        with psycopg.connect(pg.url(), autocommit=True) as conn:
            conn.execute("CREATE ROLE fleet LOGIN NOSUPERUSER NOBYPASSRLS")
            conn.execute("ALTER ROLE fleet SET chunksync.tenant = '*'")  # the checks' raw SQL
            conn.execute("CREATE DATABASE rolling OWNER fleet TEMPLATE template0")
        return run_upgrade(pg.url("rolling", user="fleet"), workdir, chunks)
    finally:
        pg.stop()


def run_upgrade(url: str, workdir: Path, chunks: int) -> UpgradeRun:
    config = ChaosConfig(
        backend="postgres", chunks=chunks, workers=2, concurrency=2, lease_s=5.0,
        failure_rate=0.02, work_ms=4.0, connections=None, tenant_quota=None,
    )  # fmt: skip
    chaos = ChaosRun(config, url, workdir)
    new_env = {**chaos.env, "CHUNKSYNC_MIGRATE": "never"}
    old_path = os.pathsep.join([str(previous_release(workdir / "previous")), str(ROOT)])
    old_env = {**new_env, "PYTHONPATH": old_path}
    versions = {"previous": _schema_of(old_env), "current": _schema_of(new_env)}
    run("migrate", db=url, env=old_env)  # the previous release makes its schema
    queue_id = _make_queue(old_env, url, chunks, config.work_ms / 1000.0)
    up = UpgradeRun(RunResult(config, url, queue_id, chaos.effects), versions=versions)
    probe = ClaimProbe(url)
    probe.start()
    try:
        _drive(chaos, up, url, old_env)
    finally:
        probe.halt.set()
        probe.join(10)
        chaos.stop_all(up.result)
    up.claims_held_up = probe.claims_held_up
    up.longest_claim_wait_s = probe.longest_claim_wait_s
    up.longest_lock_wait_s = probe.longest_lock_wait_s
    up.done_by_pid = _done_by_pid(chaos.effects)
    up.verdict = check(up.result, chaos_app.chaos_policy())
    return up


def _drive(chaos: ChaosRun, up: UpgradeRun, url: str, old_env: dict[str, str]) -> None:
    r, deadline = up.result, time.monotonic() + TIMEOUT_S
    old = [chaos.start_worker(r, env=old_env) for _ in range(2)]
    up.old_pids = {p.pid for p in old}
    _wait(lambda: _completed(url, r.queue_id) >= r.config.chunks // 5, deadline, "old drain")
    up.phases.append(f"previous release drained {_completed(url, r.queue_id)}; migrating")
    up.plan = run("migrate", "--plan", db=url, env=chaos.env).stdout
    began = time.monotonic()
    run("migrate", db=url, env=chaos.env)
    up.migrated_in_s = time.monotonic() - began
    new = [chaos.start_worker(r, env={**chaos.env, "CHUNKSYNC_MIGRATE": "never"}) for _ in "ab"]
    up.new_pids = {p.pid for p in new}
    late = chaos.start_worker(r, env=old_env)
    old.append(late)
    up.late_old_pid = late.pid
    up.old_pids.add(late.pid)
    phase = "both releases"
    _wait(lambda: _all_working(chaos.effects, up), deadline, phase)
    up.phases.append(f"{phase} working at {_completed(url, r.queue_id)}; stopping the old")
    for proc in old:
        proc.send_signal(signal.SIGTERM)
    up.old_stop_codes = [proc.wait(60) for proc in old]
    for proc in old:
        chaos.procs.remove(proc)
    _wait(lambda: _finished(url, r.queue_id), deadline, "the drain by this release")
    up.phases.append("drained")


def _all_working(effects: Path, up: UpgradeRun) -> bool:
    done = _done_by_pid(effects)
    return all(done[pid] >= 50 for pid in (*up.new_pids, up.late_old_pid))


def _done_by_pid(effects: Path) -> Counter[int]:
    if not effects.exists():
        return Counter()
    lines = effects.read_text(encoding="utf-8").splitlines()
    return Counter(pid for line in lines if (pid := worker_pid(line.split()[1])) is not None)


def _completed(url: str, queue_id: str) -> int:
    rows = fetch(
        url, "SELECT count(*) AS n FROM chunks WHERE queue_id = %s AND status <> 'pending'",
        queue_id,
    )  # fmt: skip
    return int(rows[0]["n"])


def _finished(url: str, queue_id: str) -> bool:
    rows = fetch(url, "SELECT status FROM queues WHERE id = %s", queue_id)
    return rows[0]["status"] in ("completed", "failed", "cancelled")


def _wait(done: Callable[[], bool], deadline: float, what: str) -> None:
    while not done():
        if time.monotonic() > deadline:
            raise TimeoutError(f"the rolling upgrade timed out waiting for {what}")
        time.sleep(0.1)


def _schema_of(env: dict[str, str]) -> int:
    """The schema version the code on this environment's path works at."""
    found = subprocess.run(
        [sys.executable, "-c", "from chunksync import sql; print(sql.latest_version('postgres'))"],
        cwd=ROOT, env=env, capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    return int(found.stdout)


_MAKE_QUEUE = """
import sys
from tests.chaos import app as chaos_app
url, chunks, sleep_s = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
with chaos_app.make_app(url) as app:
    payloads = ({"n": n, "sleep_s": sleep_s} for n in range(chunks))
    queue = app.create_queue(chaos_app.SOURCE, payloads, name="rolling", policy=chaos_app.POLICY)
    print(queue.id)
"""


def _make_queue(env: dict[str, str], url: str, chunks: int, sleep_s: float) -> str:
    done = subprocess.run(
        [sys.executable, "-c", _MAKE_QUEUE, url, str(chunks), str(sleep_s)],
        cwd=ROOT, env=env, capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    return done.stdout.strip()
