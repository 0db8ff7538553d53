"""A SQLite writer waits for the write lock another connection holds, and gets it once that
connection commits (it asks again every few milliseconds, `SQLiteBackend._begin_write`); a lock
held past the busy timeout is `BackendBusy`, and either way the connection's own busy timeout,
which every other statement waits with, is what it was."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from chunksync.backends import sqlite as backend_module
from chunksync.backends.sqlite import SQLiteBackend
from chunksync.exceptions import BackendBusy


def _holder(path: Path) -> sqlite3.Connection:
    """Another connection, holding the write lock."""
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    return other


def _busy_timeout(backend: SQLiteBackend) -> int:
    return int(backend._connect().execute("PRAGMA busy_timeout").fetchone()[0])


def test_a_writer_gets_the_lock_once_the_holder_commits(tmp_path: Path) -> None:
    path = tmp_path / "lock.db"
    backend = SQLiteBackend(f"sqlite:///{path}")
    try:
        other = _holder(path)
        released = threading.Event()

        def release() -> None:
            threading.Event().wait(0.3)  # meanwhile the writer below asks, and is refused
            released.set()
            other.execute("COMMIT")

        thread = threading.Thread(target=release)
        thread.start()
        with backend.transaction() as s:  # BEGIN IMMEDIATE: waits for the holder
            assert released.is_set()  # it began only after the other connection let go
            s.execute("register_worker", {"id": "w", "host": "h", "pid": 1, "concurrency": 1})
        thread.join()
        other.close()
        assert _busy_timeout(backend) == backend_module.BUSY_TIMEOUT_MS
        assert backend.fetch_one("get_worker", {"id": "w"}) is not None
    finally:
        backend.close()


def test_a_lock_held_past_the_busy_timeout_is_busy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "lock.db"
    backend = SQLiteBackend(f"sqlite:///{path}")
    try:
        backend._connect()  # its busy timeout set before the patch below
        monkeypatch.setattr(backend_module, "BUSY_TIMEOUT_MS", 200)
        other = _holder(path)
        with pytest.raises(BackendBusy, match="busy"), backend.transaction():
            pass
        other.execute("ROLLBACK")
        other.close()
        assert _busy_timeout(backend) == 200  # restored to the (patched) timeout
        with backend.transaction() as s:  # and the lock is there for the taking again
            s.execute("register_worker", {"id": "w", "host": "h", "pid": 1, "concurrency": 1})
    finally:
        backend.close()
