"""`chunksync check` and the damage it is for, through the real CLI: a database file truncated
or overwritten in the middle, its WAL deleted while a worker runs, a full disk. Each ends in
one clear sentence (never a traceback), and `check` reports the damage, or that there is none
when nothing was lost."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from chunksync.app import App
from chunksync.models import ChunkStatus
from tests.acceptance.test_cli import one_error, run
from tests.servers import missing_server

DEMO = "demo://faults?chunks={n}&seed=3&failure_rate=0"


def planned(url: str, n: int = 300) -> str:
    with App(url) as app:
        app.create_queue(DEMO.format(n=n))
    return url


def totals(url: str) -> dict[str, int]:
    [queue] = json.loads(run("status", "--json", db=url).stdout)
    return dict(queue["totals"])


def start_worker(url: str, out: Path) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "chunksync", "--db", url, "worker", "-c", "2", "--until-done"]
    cmd += ["--poll", "0.05"]
    with out.open("w") as sink:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(cmd, stdout=sink, stderr=subprocess.STDOUT, text=True)


def wait_for(predicate: object, what: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_a_sound_database_passes(sqlite_url: str) -> None:
    planned(sqlite_url)
    assert "no damage found" in run("check", db=sqlite_url).stdout
    report = json.loads(run("check", "--json", db=sqlite_url).stdout)
    assert report["ok"] and report["violations"] == 0 and "check_leases" in report["checked"]


def test_a_broken_invariant_is_named_with_what_to_do(sqlite_url: str) -> None:
    planned(sqlite_url, 10)
    conn = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"))
    with conn:
        (chunk_id,) = conn.execute("SELECT id FROM chunks ORDER BY seq LIMIT 1").fetchone()
        conn.execute("UPDATE chunks SET status = 'processing' WHERE id = ?", (chunk_id,))
        conn.execute("UPDATE chunks SET finished_at = 1 WHERE seq = 2")
    conn.close()
    proc = run("check", db=sqlite_url, expect=1)
    assert "1 chunk(s) are processing without a whole lease" in proc.stderr
    assert chunk_id in proc.stderr and "chunksync release ID" in proc.stderr
    assert "disagree with their finish time" in proc.stderr
    assert "2 violation(s) found" in proc.stdout
    report = json.loads(run("check", "--json", db=sqlite_url, expect=1).stdout)
    assert {f["check"] for f in report["findings"]} == {"check_leases", "check_finished"}


@pytest.mark.parametrize("damage", ["truncated", "overwritten"])
def test_a_damaged_file_is_one_error_and_check_says_so(sqlite_url: str, damage: str) -> None:
    planned(sqlite_url, 2000)
    path = Path(sqlite_url.removeprefix("sqlite:///"))
    size = path.stat().st_size
    with path.open("r+b") as f:
        if damage == "truncated":
            f.truncate(size // 2)
        else:
            f.seek(size // 2)
            f.write(os.urandom(16384))
    assert "damaged" in one_error(run("chunks", "--limit", "5000", db=sqlite_url, expect=1))
    proc = run("check", db=sqlite_url, expect=1)
    assert "damage:" in proc.stderr and "restore the latest backup" in proc.stderr
    assert not json.loads(run("check", "--json", db=sqlite_url, expect=1).stdout)["ok"]


def test_wal_deleted_while_a_worker_runs(sqlite_url: str, tmp_path: Path) -> None:
    """SQLite does not notice: the worker would go on writing to the deleted WAL while a process
    opening the database afterwards starts a new one. The worker notices (the WAL it writes to
    is no longer the file on disk) and says so in one sentence on every write it refuses;
    a process opening the database meanwhile works or ends in one clear sentence; once the
    worker is stopped, `check` finds no damage and a fresh worker finishes every chunk."""
    planned(sqlite_url, 3000)
    wal = Path(sqlite_url.removeprefix("sqlite:///") + "-wal")
    log = tmp_path / "worker.log"
    worker = start_worker(sqlite_url, log)
    try:
        wait_for(lambda: "running with" in log.read_text(), "the worker to start")
        wait_for(wal.exists, "the WAL")
        time.sleep(0.5)
        wal.unlink()
        cmd = [sys.executable, "-m", "chunksync", "--db", sqlite_url, "status"]
        other = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
        assert "Traceback" not in other.stdout + other.stderr
        if other.returncode:
            assert "chunksync check" in one_error(other)
        said = "write-ahead log"
        wait_for(lambda: worker.poll() is not None or said in log.read_text(), "the worker")
        worker.terminate()
        worker.wait(timeout=120)
    finally:
        worker.kill()
        worker.wait(timeout=60)  # reaped: a running Popen left behind warns in a later test
    text = log.read_text()
    assert said in text and "Traceback" not in text, text[-3000:]
    assert "no damage found" in run("check", db=sqlite_url).stdout
    run("worker", "--until-done", "--poll", "0.05", db=sqlite_url)
    assert totals(sqlite_url)[ChunkStatus.COMPLETED] == 3000
    assert "no damage found" in run("check", db=sqlite_url).stdout


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 MB tmpfs (root only); without it the test cannot run, and says so."""
    mount = tmp_path / "disk"
    mount.mkdir()
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if made.returncode != 0:
        missing_server(f"cannot mount a small tmpfs to fill (needs root): {made.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(folder: Path) -> Path:
    """Fill the filesystem to the last byte."""
    filler = folder / "filler"
    # Unbuffered: with a buffer, closing the file flushed its last bytes into the full disk and
    # raised again, outside the `raises`.
    with filler.open("wb", buffering=0) as f, pytest.raises(OSError):
        while True:
            f.write(b"\0" * 65536)
    return filler


def test_a_full_disk_is_one_error_and_loses_nothing(small_disk: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{small_disk / 'full.db'}"
    planned(url, 1000)
    filler = fill(small_disk)
    error = one_error(run("demo", "--chunks", "20000", db=url, expect=1))
    assert "full" in error or "chunksync check" in error
    filler.unlink()
    assert totals(url) == {"pending": 1000, "processing": 0, "completed": 0, "dead": 0,
                           "cancelled": 0}  # fmt: skip
    log = tmp_path / "worker.log"
    worker = start_worker(url, log)
    try:
        wait_for(lambda: "running with" in log.read_text(), "the worker to start")
        filler = fill(small_disk)
        wait_for(lambda: "disk" in log.read_text(), "the worker to meet the full disk")
        filler.unlink()
        assert worker.wait(timeout=300) == 0, log.read_text()[-2000:]
    finally:
        worker.kill()
        worker.wait(timeout=60)  # reaped: a running Popen left behind warns in a later test
    assert "Traceback" not in log.read_text()
    assert "no damage found" in run("check", db=url).stdout
    assert totals(url)[ChunkStatus.COMPLETED] == 1000
