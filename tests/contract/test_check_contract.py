"""`chunksync check` on every backend: a database workers used honestly has no violation, and
each chunk invariant broken by hand is found, named, and counted."""

from __future__ import annotations

from typing import Any

import pytest

from chunksync.app import App
from chunksync.check import DAMAGE, check_database
from tests.rawsql import run

FAST: dict[str, Any] = {"poll_s": 0.05, "time_scale": 0.001, "lease_s": 5.0}

BREAKS = {
    "check_leases": "UPDATE chunks SET worker_id = 'gone' WHERE seq = 1",
    "check_finished": "UPDATE chunks SET finished_at = NULL WHERE seq = 2",
    "check_counters": "UPDATE chunks SET attempts = -1 WHERE seq = 3",
}


def test_an_honest_run_has_no_violation(app: App) -> None:
    queue = app.create_queue("demo://faults?chunks=60&seed=5&failure_rate=0.3")
    app.worker(concurrency=3, **FAST).run_until_done([queue.id], timeout_s=120)
    report = check_database(app.backend)
    assert report.ok and report.violations == 0, report.findings
    assert [f for f in report.findings if f.severity == DAMAGE] == []


@pytest.mark.parametrize("check", sorted(BREAKS))
def test_a_broken_invariant_is_found(app: App, db_url: str, check: str) -> None:
    queue = app.create_queue("demo://faults?chunks=5&seed=5&failure_rate=0")
    app.worker(concurrency=1, **FAST).run_until_done([queue.id], timeout_s=60)
    run(db_url, BREAKS[check])
    report = check_database(app.backend)
    assert not report.ok and report.violations == 1
    [finding] = report.findings
    assert finding.check == check and finding.count == 1 and "What to do" in finding.line()
