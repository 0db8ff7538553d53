"""Worker processes on one PostgreSQL: the real `chunksync worker` CLI, several at once.

Each handler records its side effect in a table (tests/integration/pg_app.py), so "exactly once"
is counted, not assumed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from chunksync.app import App
from chunksync.models import Attempt, ChunkStatus, Outcome
from chunksync.results import FinishResult
from tests.integration.pg_app import SIDE_EFFECTS_TABLE

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
CHUNKSYNC = [str(Path(sys.executable).parent / "chunksync")]
APP = "tests.integration.pg_app:make_app"


def wait_for(predicate: Callable[[], Any], timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.05)


def query(url: str, statement: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True, application_name="observer") as conn:
        return conn.execute(statement.encode(), params or None).fetchall()


@pytest.fixture
def side_effects(pg_url: str) -> str:
    query(pg_url, "SELECT 1")
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(SIDE_EFFECTS_TABLE.encode())
    return pg_url


def start_worker(url: str, *options: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*CHUNKSYNC, "--db", url, "--app", APP, "worker", *options],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


@pytest.fixture
def workers() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=10)


@pytest.mark.timeout(150)
def test_four_worker_processes_complete_each_chunk_exactly_once(
    side_effects: str, workers: list[subprocess.Popen[str]]
) -> None:
    url = side_effects
    n = 10_000
    with App(url) as app:
        app.handler("effect")(lambda ctx: None)
        queue = app.create_queue("effect", payloads=[{"n": i} for i in range(n)])
        app.manager.pause_queue(queue.id)  # until every process is up: each takes a share
    for _ in range(4):
        workers.append(
            start_worker(url, "-c", "2", "--poll", "0.2", "--lease", "10", "--until-done")
        )
    running = "SELECT COUNT(*) FROM workers WHERE status = 'running'"
    wait_for(lambda: query(url, running) == [(4,)], 60, "four worker processes")
    with App(url) as app:
        app.manager.resume_queue(queue.id)
    for proc in workers:
        _out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err

    counts = query(url, "SELECT COUNT(*), COUNT(DISTINCT chunk_id) FROM side_effects")[0]
    assert counts == (n, n)
    per_process = query(url, "SELECT pid, COUNT(*) FROM side_effects GROUP BY pid")
    assert len(per_process) == 4, per_process  # every process took a share
    assert query(url, "SELECT status, COUNT(*) FROM chunks GROUP BY status") == [("completed", n)]
    attempts = query(url, "SELECT outcome, COUNT(*) FROM attempts GROUP BY outcome")
    assert attempts == [("completed", n)]
    leftovers = query(
        url,
        "SELECT COUNT(*) FROM chunks WHERE lease_token IS NOT NULL OR worker_id IS NOT NULL "
        "OR attempts <> 1",
    )
    assert leftovers == [(0,)]
    assert query(url, "SELECT status FROM queues WHERE id = %s", queue.id) == [("completed",)]
    assert query(url, "SELECT DISTINCT status FROM workers") == [("stopped",)]
    assert query(url, "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()")[
        0
    ] == (0,)
    # Each exited process's server session ends a moment after it: it frees its locks then.
    advisory = "SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory'"
    wait_for(lambda: query(url, advisory) == [(0,)], 30, "the advisory locks to be freed")
    sessions = (
        "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND application_name LIKE 'chunksync-%%'"
    )
    wait_for(lambda: query(url, sessions) == [(0,)], 30, "the workers' sessions to end")


@pytest.mark.timeout(90)
def test_a_sigkilled_workers_chunk_is_completed_once_by_another(
    side_effects: str, workers: list[subprocess.Popen[str]]
) -> None:
    url = side_effects
    lease_s, poll_s = 2.0, 0.2
    with App(url) as app:
        app.handler("hang")(lambda ctx: None)
        queue = app.create_queue("hang", payloads=[{"n": 1}])
    options = ["-c", "1", "--poll", str(poll_s), "--lease", str(lease_s), "--until-done"]
    workers.extend(start_worker(url, *options) for _ in range(2))

    started = wait_for(
        lambda: query(url, "SELECT pid, chunk_id FROM side_effects WHERE kind = 'started'"),
        30,
        "a worker to start the chunk",
    )
    (victim_pid, chunk_id) = started[0]
    victim = next(p for p in workers if p.pid == victim_pid)
    os.kill(victim_pid, signal.SIGKILL)
    victim.wait(10)

    done = wait_for(
        lambda: query(url, "SELECT pid, at FROM side_effects WHERE kind = 'done'"),
        lease_s + poll_s + 15,
        "another worker to complete the chunk",
    )
    survivor = next(p for p in workers if p.pid != victim_pid)
    _out, err = survivor.communicate(timeout=30)
    assert survivor.returncode == 0, err
    assert len(done) == 1 and done[0][0] == survivor.pid
    with App(url) as app:
        chunk = app.manager.get_chunk(str(chunk_id))
        assert chunk.status is ChunkStatus.COMPLETED and chunk.attempts == 2
        outcomes = [a["outcome"] for a in app.manager.list_attempts(chunk.id)]
        assert outcomes == [Outcome.STUCK, Outcome.COMPLETED]
        (audit,) = app.manager.list_audit(chunk_id=chunk.id)
        assert audit.action == "recover_stuck" and audit.actor.split(":")[1] == str(survivor.pid)
        assert audit.at >= audit.details["lease_expires_at"]  # only once the lease ran out
        assert audit.details["previous_worker"].split(":")[1] == str(victim_pid)
        assert app.manager.get_queue(queue.id).status == "completed"


DONE = FinishResult(ChunkStatus.COMPLETED, Outcome.COMPLETED, items=1)


def _race_once(stale: App, leader: App, queue_id: str) -> bool:
    """A stale worker's finish and the leader's recovery of the same chunk, at once.
    Returns whether the finish won; checks that exactly one of them did."""
    token, (chunk,) = stale.manager.claim("stale", ["noop"], lease_s=0.05)
    expires = chunk.lease_expires_at or 0.0
    wait_for(lambda: stale.manager.now() > expires, 5, "lease expiry")
    barrier = threading.Barrier(2)
    result: dict[str, Any] = {}
    attempt = Attempt(
        chunk_id=chunk.id,
        queue_id=queue_id,
        tenant="default",
        worker_id="stale",
        attempt=chunk.attempts,
        started_at=0.0,
        finished_at=0.01,
        outcome=Outcome.COMPLETED,
    )

    def finish() -> None:
        barrier.wait()
        result["finish"] = stale.manager.finish(chunk, token, DONE, attempt)

    def recover() -> None:
        barrier.wait()
        result["recovered"] = leader.manager.recover_stuck(
            "leader", lambda q: leader.policy("default")
        )

    threads = [threading.Thread(target=finish), threading.Thread(target=recover)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    recovered = [r.chunk_id for r in result["recovered"]]
    assert result["finish"] != (recovered == [chunk.id]), result
    outcomes = [a["outcome"] for a in stale.manager.list_attempts(chunk.id)]
    status = stale.manager.get_chunk(chunk.id).status
    if result["finish"]:
        assert (status, outcomes) == (ChunkStatus.COMPLETED, [Outcome.COMPLETED])
    else:
        assert status is ChunkStatus.PENDING
        assert sorted(outcomes) == sorted([Outcome.STUCK, Outcome.LOST_LEASE])
        stale.manager.cancel_chunk(chunk.id)  # out of the way of the next trial
    return bool(result["finish"])


@pytest.mark.timeout(60)
def test_a_late_finish_racing_the_recovery_has_one_winner(pg_url: str) -> None:
    trials = 25
    with App(pg_url) as stale, App(pg_url) as leader:
        stale.handler("noop")(lambda ctx: None)
        queue = stale.create_queue("noop", payloads=list(range(trials)))
        wins = [_race_once(stale, leader, queue.id) for _ in range(trials)]
    assert len(wins) == trials
