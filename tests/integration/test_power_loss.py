"""Power loss on SQLite: workers SIGKILLed at random points of their write path, over and over,
and after every kill `chunksync check` finds no violation; then the queue finishes, each chunk
once. (The real CLI's workers, a modest number of times: tests/chaos/power.py forks its workers
to kill them hundreds of times here, test_power_loss_loop.py, and 2,000 in `make chaos`.)"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from chunksync.app import App
from chunksync.check import check_database
from chunksync.models import ChunkStatus
from tests.acceptance.test_cli import run

KILLS = 12
CHUNKS = 20_000  # more than 12 short runs can drain on a quiet machine
SEED = 17


def start(url: str, log: Path) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "chunksync", "--db", url, "worker", "-c", "3"]
    cmd += ["--poll", "0.02", "--lease", "1", "--wait-for-db", "0"]
    with log.open("a") as sink:
        return subprocess.Popen(cmd, stdout=sink, stderr=subprocess.STDOUT, text=True)


@pytest.mark.timeout(900)  # a process start per kill, on a loaded machine
def test_sigkills_in_the_write_path_leave_no_violation(sqlite_url: str, tmp_path: Path) -> None:
    rng = random.Random(SEED)
    with App(sqlite_url) as app:
        queue = app.create_queue(f"demo://faults?chunks={CHUNKS}&seed=5&failure_rate=0")
    log = tmp_path / "workers.log"
    kills = 0
    with App(sqlite_url) as app:
        while kills < KILLS:
            worker = start(sqlite_url, log)
            deadline = time.monotonic() + 60
            while "running with" not in log.read_text().rsplit("--- kill", 1)[-1]:
                assert worker.poll() is None, log.read_text()[-2000:]
                assert time.monotonic() < deadline, "the worker did not start"
                time.sleep(0.02)
            time.sleep(rng.uniform(0.0, 0.6))  # somewhere in a claim, a batch, a report
            os.kill(worker.pid, signal.SIGKILL)
            worker.wait(30)
            kills += 1
            with log.open("a") as sink:
                sink.write(f"--- kill {kills}\n")
            report = check_database(app.backend)
            assert report.ok, [f.line() for f in report.findings]
        done = app.manager.get_queue(queue.id).totals.get(ChunkStatus.COMPLETED, 0)
    assert "Traceback" not in log.read_text()
    assert done < CHUNKS, "the kills should land before the queue drains: raise CHUNKS"
    run("worker", "--until-done", "--poll", "0.02", "--lease", "1", db=sqlite_url)
    assert "no damage found" in run("check", db=sqlite_url).stdout
    with App(sqlite_url) as app:
        chunks = app.manager.list_chunks(queue.id, limit=CHUNKS)
        assert len(chunks) == CHUNKS
        assert all(c.status.terminal for c in chunks)
