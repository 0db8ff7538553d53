"""The real `chunksync` command through subprocess: what a user types and sees."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from chunksync.app import App
from chunksync.models import ChunkStatus


def run(
    *args: str, db: str | None = None, expect: int = 0, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The real CLI in a subprocess (`env`: its whole environment, else this one's)."""
    cmd = [sys.executable, "-m", "chunksync", *(["--db", db] if db else []), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False, env=env)
    assert proc.returncode == expect, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stdout + proc.stderr
    return proc


def one_error(proc: subprocess.CompletedProcess[str]) -> str:
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    return lines[0]


def test_demo_prints_the_report(sqlite_url: str) -> None:
    proc = run("demo", "--chunks", "60", "--seed", "3", "--crashes", "2", db=sqlite_url)
    out = proc.stdout
    assert "failures by category" in out and "2 stuck chunk(s) recovered" in out
    assert "--time-scale" in out and "dead:" in out
    with App(sqlite_url) as app:
        [queue] = app.manager.list_queues()
        assert queue.done == queue.total == 60  # every chunk terminal


def test_demo_is_deterministic_for_a_seed(tmp_path: Path) -> None:
    outcomes = []
    for n in (1, 2):
        url = f"sqlite:///{tmp_path / f'demo{n}.db'}"
        run("demo", "--chunks", "40", "--seed", "11", "--crashes", "0", db=url)
        with App(url) as app:
            chunks = app.manager.list_chunks(limit=100)
            outcomes.append([(c.seq, c.status.value, c.dead_reason) for c in chunks])
    assert outcomes[0] == outcomes[1]


def test_status_chunks_health_and_interventions(sqlite_url: str) -> None:
    run("demo", "--chunks", "30", "--seed", "5", "--crashes", "0", db=sqlite_url)
    status = json.loads(run("status", "--json", db=sqlite_url).stdout)
    assert status[0]["totals"]["pending"] == 0
    dead = json.loads(run("chunks", "--status", "dead", "--json", db=sqlite_url).stdout)
    assert dead and all(c["dead_reason"] for c in dead)
    health = json.loads(run("health", "--json", db=sqlite_url).stdout)
    assert health["system"]["state"] in {"healthy", "degraded", "critical"}
    assert health["queues"][0]["attempts"] >= 30
    run("retry", dead[0]["id"], "--reason", "fixed upstream", db=sqlite_url)
    refused = run("retry", dead[0]["id"], db=sqlite_url, expect=1)
    assert "only a dead chunk can be retried" in one_error(refused)
    queue = status[0]["id"]
    run("pause", queue, db=sqlite_url)
    again = run("pause", queue, db=sqlite_url)  # not a mistake: exit 0, and it says so
    assert "is already paused" in again.stdout and not again.stderr
    run("resume", queue, db=sqlite_url)
    run("cancel", queue, "--queue", db=sqlite_url)
    with App(sqlite_url) as app:
        assert app.manager.get_chunk(dead[0]["id"]).status is ChunkStatus.CANCELLED
        actions = [e.action for e in app.manager.list_audit()]
    assert actions[:4] == ["cancel_queue", "resume_queue", "pause_queue", "retry_chunk"]


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["retry", "nope"], "no chunk with id 'nope'"),
        (["release", "nope"], "no chunk with id 'nope'"),
        (["pause", "nope"], "no queue with id or name 'nope'"),
        (["release", "ghost", "--worker"], "no worker with id 'ghost'"),
    ],
)
def test_mistakes_get_one_clear_sentence(sqlite_url: str, args: list[str], complaint: str) -> None:
    run("init", db=sqlite_url)
    assert complaint in one_error(run(*args, db=sqlite_url, expect=1))


def test_bad_database_urls_and_files(tmp_path: Path) -> None:
    assert "unsupported database URL" in one_error(run("status", db="mysql://u:pw@h/db", expect=1))
    missing = f"sqlite:///{tmp_path / 'missing.db'}"
    said = one_error(run("status", db=missing, expect=1))
    assert f"no database at {tmp_path / 'missing.db'}" in said and "from --db" in said
    no_dir = f"sqlite:///{tmp_path / 'no' / 'such' / 'dir.db'}"
    assert "does not exist" in one_error(run("init", db=no_dir, expect=1))
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a database, it is a shopping list\n" * 100)
    before = garbage.read_bytes()
    err = one_error(run("status", db=f"sqlite:///{garbage}", expect=1))
    assert "not a SQLite database" in err
    assert garbage.read_bytes() == before  # nothing stored was harmed


def test_a_database_from_a_newer_chunksync_is_refused(sqlite_url: str) -> None:
    run("init", db=sqlite_url)
    path = sqlite_url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO schema_version VALUES (999, 'future', 0)")
    conn.close()
    err = one_error(run("status", db=sqlite_url, expect=1))
    assert "newer than this chunksync" in err and "upgrade" in err


def test_a_password_in_the_database_url_never_shows(tmp_path: Path) -> None:
    proc = run("status", db="postgresql://alice:S3cr3t-P4ss!@127.0.0.1:1/nodb", expect=1)
    assert "S3cr3t-P4ss!" not in proc.stdout + proc.stderr


def test_bad_options_are_usage_errors(sqlite_url: str) -> None:
    proc = run("demo", "--failure-rate", "7", db=sqlite_url, expect=2)
    assert "Traceback" not in proc.stderr and "failure-rate" in proc.stderr
