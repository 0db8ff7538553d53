"""Schedules on every backend: each tick taken once for the fleet, a missed tick run once, the
command run by a real worker's leader in a child process, every change audited."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from chunksync import schedules
from chunksync.app import App
from chunksync.exceptions import ConfigurationError, NotFound
from chunksync.models import AuditEntry, QueueStatus


def wait_until(predicate: Any, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.05)


def audit_of(app: App, action: str) -> list[AuditEntry]:
    return [a for a in app.manager.list_audit(limit=500) if a.action == action]


def test_add_list_remove_are_audited(app: App) -> None:
    added = schedules.add(app.backend, "nightly", "@daily", ["status", "--json"])
    assert added.next_at > app.manager.now() and added.runs == 0
    assert [s.name for s in schedules.list_all(app.backend)] == ["nightly"]
    with pytest.raises(ConfigurationError, match="exists"):
        schedules.add(app.backend, "nightly", "@hourly", ["status"])
    schedules.remove(app.backend, "nightly")
    assert schedules.list_all(app.backend) == []
    with pytest.raises(NotFound, match="no schedule named 'nightly'"):
        schedules.remove(app.backend, "nightly")
    assert [a.details["schedule"] for a in audit_of(app, "schedule_add")] == ["nightly"]
    assert len(audit_of(app, "schedule_remove")) == 1


def test_ticks_missed_while_no_worker_ran_run_once(app: App) -> None:
    now = app.manager.now()
    schedules.add(app.backend, "every-minute", "* * * * *", ["status"], first_at=now - 3600)
    [taken] = schedules.claim_due(app.backend)
    assert taken.name == "every-minute"
    assert schedules.claim_due(app.backend) == []  # not once per missed tick
    after = schedules.get(app.backend, "every-minute")
    assert now < after.next_at <= now + 61 and after.runs == 1
    [run] = audit_of(app, "schedule_run")
    assert run.actor == "scheduler" and run.details["missed"] >= 59


def test_racing_leaders_take_each_tick_once(app: App) -> None:
    schedules.add(app.backend, "race", "@hourly", ["status"])
    for _ in range(5):
        schedules.run_soon(app.backend, "race")
        taken: list[str] = []
        barrier = threading.Barrier(4)

        def leader(barrier: threading.Barrier, taken: list[str]) -> None:
            barrier.wait()
            taken.extend(s.name for s in schedules.claim_due(app.backend))

        threads = [threading.Thread(target=leader, args=(barrier, taken)) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert taken == ["race"]
    assert schedules.get(app.backend, "race").runs == 5


def test_a_worker_runs_a_due_schedule_through_the_cli(app: App) -> None:
    app.handler("idle")(lambda ctx: 1)
    queue = app.create_queue("idle://x", [{"n": 1}], name="nightly-import")
    schedules.add(app.backend, "pause-it", "@daily", ["pause", "nightly-import"])
    schedules.run_soon(app.backend, "pause-it")
    elsewhere = app.create_queue("idle://y", [], name="elsewhere")
    worker = app.worker(poll_s=0.05, queue_id=elsewhere.id)  # a leader that claims nothing
    worker.start()
    try:
        wait_until(lambda: schedules.get(app.backend, "pause-it").last_status is not None)
        wait_until(lambda: schedules.get(app.backend, "pause-it").last_status != "started")
    finally:
        worker.stop(grace_s=1.0)
    done = schedules.get(app.backend, "pause-it")
    assert done.last_status == "exit 0", done.last_status
    assert app.manager.get_queue(queue.id).status is QueueStatus.PAUSED
    assert done.runs == 1 and done.next_at > app.manager.now()
