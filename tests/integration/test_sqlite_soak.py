"""SQLite under load: 8 worker slots in 2 processes on one file, chunks added and read while
they run. No `database is locked` may reach a chunk, a worker's log or a user.
CHUNKSYNC_SOAK_SECONDS sets how long chunks keep arriving (default 6 s in the test suite)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from chunksync.models import QueueStatus
from tests.fixtures.apps import make_app

SOAK_SECONDS = float(os.environ.get("CHUNKSYNC_SOAK_SECONDS", "6"))
ROOT = Path(__file__).parents[2]


@pytest.mark.timeout(SOAK_SECONDS + 120)
def test_two_processes_eight_slots_one_file(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    effects = tmp_path / "effects.log"
    monkeypatch.setenv("CHUNKSYNC_TEST_EFFECTS", str(effects))
    logs = [tmp_path / f"worker{n}.log" for n in (1, 2)]
    cmd = [
        sys.executable,
        "-m",
        "chunksync",
        "--db",
        sqlite_url,
        "--verbose",
        "--app",
        "tests.fixtures.apps:make_app",
        "worker",
        "--concurrency",
        "4",
        "--poll",
        "0.05",
        "--lease",
        "10",
    ]
    with make_app(sqlite_url) as app:
        outputs = [log.open("w") for log in logs]
        workers = [
            subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT) for out in outputs
        ]
        try:
            queues, added = [], 0
            deadline = time.monotonic() + SOAK_SECONDS
            while time.monotonic() < deadline:  # producers and readers race the workers
                q = app.create_queue("sleepy://soak", [{"sleep_s": 0.0}] * 200)
                queues.append(q.id)
                added += 200
                app.manager.list_queues()
                subprocess.run(
                    [sys.executable, "-m", "chunksync", "--db", sqlite_url, "status"],
                    cwd=ROOT,
                    check=True,
                    capture_output=True,
                    timeout=60,
                )
            finish = time.monotonic() + 90
            while not all(app.manager.get_queue(q).status is QueueStatus.COMPLETED for q in queues):
                assert time.monotonic() < finish, "the workers did not drain the soak"
                time.sleep(0.1)
        finally:
            for w in workers:
                w.send_signal(signal.SIGTERM)
            codes = [w.wait(60) for w in workers]
            for out in outputs:
                out.close()
        assert codes == [0, 0]
        seen = Counter(line.split()[0] for line in effects.read_text().splitlines())
        assert len(seen) == added and set(seen.values()) == {1}
        failed = app.manager.backend.fetch_all("demo_attempts", {"queue_id": queues[0]})
        assert all(row["outcome"] == "completed" for row in failed)
    text = "".join(log.read_text() for log in logs)
    assert "locked" not in text.lower() and "database error" not in text
    assert text.count("worker stopped after") == 2
