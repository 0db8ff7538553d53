"""SQLite sends a one-row INSERT given many rows (`execute_many`) as statements of up to 64 rows
(`MultiRowInsert`): every row lands once, as `executemany` would have stored it, an upsert's
later row of one key wins, and a row without one of the parameters is refused as before. Only
plain one-row INSERTs are rewritten."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from chunksync.backends.sqlite import (
    ROWS_PER_INSERT,
    SQLiteBackend,
    multi_row_insert,
    statement_sizes,
)
from chunksync.exceptions import BackendError
from chunksync.store.store import FolderKey, MailMessage, MessageStore, message_row

KEY = FolderKey("user@example.com", "INBOX", 7)


def _rows(count: int, *, first_uid: int = 1, mark: bytes = b"") -> list[dict[str, Any]]:
    messages = [
        MailMessage(
            uid=first_uid + n,
            raw=b"Message-ID: <m%d@example.com>\r\nSubject: s%d\r\n\r\nbody %d\x00\xff%s\r\n"
            % (n, n, n, mark),
            flags=("\\Seen",) if n % 2 else (),
            internaldate=1_700_000_000.0 + n,
        )
        for n in range(count)
    ]
    return [message_row(KEY, m) for m in messages]


def _stored(backend: SQLiteBackend) -> dict[int, tuple[bytes, str, str]]:
    rows = backend.fetch_all("store_page", _page())
    return {int(r["uid"]): (bytes(r["raw"]), str(r["sha256"]), str(r["flags"])) for r in rows}


def _page() -> dict[str, Any]:
    return {
        "account": KEY.account,
        "folder": KEY.folder,
        "after_account": "",
        "after_folder": "",
        "after_uidvalidity": 0,
        "after_uid": 0,
        "include_deleted": 0,
        "limit": 10_000,
    }


@pytest.mark.parametrize("count", [2, 63, 64, 65, 500])
def test_every_row_lands_once_and_byte_exact(tmp_path: Path, count: int) -> None:
    backend = SQLiteBackend(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        rows = _rows(count)
        with backend.transaction() as s:
            MessageStore(backend).put_rows(s, rows)
        stored = _stored(backend)
        assert sorted(stored) == [r["uid"] for r in rows]
        for row in rows:
            raw, digest, flags = stored[row["uid"]]
            assert raw == row["raw"]
            assert digest == hashlib.sha256(raw).hexdigest()
            assert flags == row["flags"]
    finally:
        backend.close()


def test_an_upserts_later_row_of_one_key_wins(tmp_path: Path) -> None:
    backend = SQLiteBackend(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        first, again = _rows(70), _rows(70, mark=b"again")
        with backend.transaction() as s:
            MessageStore(backend).put_rows(s, first[:40] + again[30:40] + first[40:])
        stored = _stored(backend)
        assert len(stored) == 70
        assert stored[35][0] == again[34]["raw"]
        assert stored[25][0] == first[24]["raw"]
    finally:
        backend.close()


def test_a_row_without_a_parameter_is_refused_and_nothing_is_kept(tmp_path: Path) -> None:
    backend = SQLiteBackend(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        rows = _rows(10)
        del rows[6]["subject"]
        with pytest.raises(BackendError, match="subject"), backend.transaction() as s:
            s.execute_many("store_upsert_message", rows)
        assert _stored(backend) == {}
    finally:
        backend.close()


def test_statement_sizes_cover_the_rows_with_few_texts() -> None:
    for rows in range(1, 3 * ROWS_PER_INSERT):
        sizes = list(statement_sizes(rows))
        assert sum(sizes) == rows
        assert set(sizes) <= {ROWS_PER_INSERT >> k for k in range(7)}
    assert list(statement_sizes(130)) == [64, 64, 2]


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO t (a, b) VALUES (:a, :b), (:c, :d)",
        "INSERT INTO t (a, b) VALUES (:a, :b) ON CONFLICT (a) DO UPDATE SET b = :b",
        "INSERT INTO t (a, b) VALUES (:a, :b) RETURNING a",
        "INSERT INTO t (a, b) SELECT :a, :b",
        "UPDATE t SET b = :b WHERE a = :a",
        "INSERT INTO t (a) VALUES (1)",
    ],
)
def test_only_a_plain_one_row_insert_is_rewritten(sql: str) -> None:
    assert multi_row_insert(sql) is None


def test_quoted_text_is_not_taken_for_a_parameter() -> None:
    insert = multi_row_insert("INSERT INTO t (a, b, c) VALUES (:a, strftime('%H:%M', 'now'), :c)")
    assert insert is not None
    assert insert.names == ("a", "c")
    assert insert.text(2).endswith("VALUES (?, strftime('%H:%M', 'now'), ?), "
                                   "(?, strftime('%H:%M', 'now'), ?)")  # fmt: skip
