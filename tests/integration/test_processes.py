"""Real worker processes on a real SQLite file: SIGKILL mid-chunk, SIGTERM, several workers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from chunksync.models import ChunkStatus, QueueStatus
from tests.fixtures.apps import make_app

LEASE_S = 2.0
POLL_S = 0.2


def wait_for(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.fixture
def effects(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "effects.log"
    monkeypatch.setenv("CHUNKSYNC_TEST_EFFECTS", str(path))
    return path


@pytest.fixture
def spawn(sqlite_url: str) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []

    def start(*extra: str) -> subprocess.Popen[bytes]:
        cmd = [
            sys.executable,
            "-m",
            "chunksync",
            "--db",
            sqlite_url,
            "--app",
            "tests.fixtures.apps:make_app",
            "worker",
            "--concurrency",
            "1",
            "--lease",
            str(LEASE_S),
            "--poll",
            str(POLL_S),
            *extra,
        ]
        proc = subprocess.Popen(cmd, cwd=Path(__file__).parents[2], env=os.environ.copy())
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


def counted(effects: Path) -> Counter[str]:
    if not effects.exists():
        return Counter()
    return Counter(line.split()[0] for line in effects.read_text().splitlines())


def test_sigkill_mid_chunk_is_taken_over_exactly_once(
    sqlite_url: str, effects: Path, spawn: Callable[..., subprocess.Popen[bytes]]
) -> None:
    with make_app(sqlite_url) as app:
        q = app.create_queue("sleepy://x", [{"sleep_s": 1.0}])
        [chunk] = app.manager.list_chunks(q.id)
        victim = spawn()
        wait_for(
            lambda: app.manager.get_chunk(chunk.id).status is ChunkStatus.PROCESSING,
            30,
            "the first worker to claim the chunk",
        )
        survivor = spawn()
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
        wait_for(
            lambda: app.manager.get_queue(q.id).status is QueueStatus.COMPLETED,
            30,
            "the survivor to complete the chunk",
        )
        [entry] = [
            e for e in app.manager.list_audit(chunk_id=chunk.id) if e.action == "recover_stuck"
        ]
        assert entry.reason == "stuck" and entry.actor != chunk.worker_id
        assert entry.at >= entry.details["lease_expires_at"]  # only once the lease ran out
        done = app.manager.get_chunk(chunk.id)
        assert done.attempts == 2 and done.status is ChunkStatus.COMPLETED
        assert counted(effects) == {chunk.id: 1}
        survivor.send_signal(signal.SIGTERM)
        assert survivor.wait(30) == 0


def test_sigterm_lets_the_running_chunk_finish(
    sqlite_url: str, effects: Path, spawn: Callable[..., subprocess.Popen[bytes]]
) -> None:
    with make_app(sqlite_url) as app:
        q = app.create_queue("sleepy://x", [{"sleep_s": 1.0}, {"sleep_s": 1.0}])
        first = app.manager.list_chunks(q.id)[0]
        worker = spawn()
        wait_for(
            lambda: app.manager.get_chunk(first.id).status is ChunkStatus.PROCESSING,
            30,
            "the worker to start",
        )
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(30) == 0
        statuses = Counter(c.status for c in app.manager.list_chunks(q.id))
        assert statuses == {ChunkStatus.COMPLETED: 1, ChunkStatus.PENDING: 1}
        assert [w.status.value for w in app.manager.list_workers()] == ["stopped"]
        assert counted(effects) == {first.id: 1}


def test_three_processes_complete_every_chunk_exactly_once(
    sqlite_url: str, effects: Path, spawn: Callable[..., subprocess.Popen[bytes]]
) -> None:
    with make_app(sqlite_url) as app:
        workers = [spawn("--concurrency", "3") for _ in range(3)]
        wait_for(lambda: len(app.manager.list_workers()) == 3, 60, "three workers to start")
        q = app.create_queue("sleepy://x", [{"sleep_s": 0.005}] * 600)
        wait_for(
            lambda: app.manager.get_queue(q.id).status is QueueStatus.COMPLETED,
            90,
            "three workers to drain the queue",
        )
        for w in workers:
            w.send_signal(signal.SIGTERM)
        assert [w.wait(30) for w in workers] == [0, 0, 0]
        seen = counted(effects)
        assert len(seen) == 600 and set(seen.values()) == {1}
        by_worker = Counter(c.split()[1] for c in effects.read_text().splitlines())
        assert len(by_worker) >= 2  # the work was shared


def catches_sigterm(pid: int) -> bool:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) & (1 << (signal.SIGTERM - 1)))
    return False


def test_sigterm_while_a_worker_starts_is_a_clean_stop(
    sqlite_url: str, spawn: Callable[..., subprocess.Popen[bytes]]
) -> None:
    """A supervisor may stop a worker that is still importing: it exits 0, as a graceful stop
    does, not killed by the signal (-15), and it never registered."""
    with make_app(sqlite_url) as app:
        worker = spawn()
        # The signal lands once the command catches SIGTERM: from its first lines, ~0.2 s
        # before the worker loop (which registers the worker) installs its own handler.
        wait_for(lambda: catches_sigterm(worker.pid), 30, "the command to catch SIGTERM")
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(30) == 0
        assert app.manager.list_workers() == []
