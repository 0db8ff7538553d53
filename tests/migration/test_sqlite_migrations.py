"""schema.sql is the truth; the numbered migrations must build the very same database."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest

from chunksync import sql
from chunksync.backends.migrate import _recorded_name
from chunksync.backends.sqlite import SQLiteBackend
from chunksync.exceptions import SchemaError


def catalog(path: Path) -> dict[str, object]:
    conn = sqlite3.connect(path)
    try:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
            )
        ]
        found: dict[str, object] = {}
        for table in tables:
            found[f"table {table}"] = sorted(conn.execute(f"PRAGMA table_info({table})").fetchall())
            found[f"fks {table}"] = sorted(
                conn.execute(f"PRAGMA foreign_key_list({table})").fetchall()
            )
        for kind, name, text in conn.execute(
            "SELECT type, name, sql FROM sqlite_master"
            " WHERE type IN ('index', 'trigger', 'view') AND sql IS NOT NULL"
        ):
            found[f"{kind} {name}"] = re.sub(r"\s+", " ", text).strip()
        found["versions"] = conn.execute("SELECT version, name FROM schema_version").fetchall()
        return found
    finally:
        conn.close()


def test_migrations_build_the_same_database_as_schema_sql(tmp_path: Path) -> None:
    from_schema = SQLiteBackend(f"sqlite:///{tmp_path / 'schema.db'}")
    from_schema.close()
    from_migrations = SQLiteBackend(f"sqlite:///{tmp_path / 'migrations.db'}", migrate=False)
    from_migrations.apply_migrations_only()
    from_migrations.close()
    assert catalog(tmp_path / "schema.db") == catalog(tmp_path / "migrations.db")


def test_migrations_are_numbered_without_gaps() -> None:
    versions = [m.version for m in sql.migrations("sqlite")]
    assert versions == list(range(1, len(versions) + 1))


def test_migrate_is_idempotent_and_refuses_a_newer_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    backend = SQLiteBackend(url)
    assert backend.migrate() == backend.migrate() == sql.latest_version("sqlite")
    backend.close()
    conn = sqlite3.connect(tmp_path / "db.sqlite")
    conn.execute("INSERT INTO schema_version VALUES (9999, 'future', 0)")
    conn.commit()
    conn.close()
    with pytest.raises(SchemaError, match="newer than this chunksync"):
        SQLiteBackend(url)


def test_a_partly_migrated_database_is_brought_up_to_date(tmp_path: Path) -> None:
    first = sql.migrations("sqlite")[0]
    backend = SQLiteBackend(f"sqlite:///{tmp_path / 'db.sqlite'}", migrate=False)
    backend.apply_migrations_only(upto=first.version)
    assert backend.schema_version() == first.version
    assert backend.migrate() == backend.migrate() == sql.latest_version("sqlite")
    backend.close()
    versions = catalog(tmp_path / "db.sqlite")["versions"]
    assert versions == [(m.version, _recorded_name(m, "sqlite")) for m in sql.migrations("sqlite")]
    # 0013 only dropped indexes: recorded as an expand, the code before it works with it.
    assert (13, "fewer_attempt_indexes (works with 12)") in versions  # type: ignore[operator]


def test_tables_without_a_version_are_refused(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "db.sqlite")
    conn.execute("CREATE TABLE chunks (id int)")
    conn.close()
    with pytest.raises(SchemaError, match="no schema version"):
        SQLiteBackend(f"sqlite:///{tmp_path / 'db.sqlite'}")


def test_all_time_rollups_are_built_from_the_hours_already_kept(tmp_path: Path) -> None:
    """Migration 0012 on a database with history: the all-time rows are the sums of the hours,
    and the hourly latency histograms stay, with the all-time one beside them."""
    path = tmp_path / "db.sqlite"
    backend = SQLiteBackend(f"sqlite:///{path}", migrate=False)
    backend.apply_migrations_only(upto=11)
    backend.close()
    day = 20_000 * 86400
    conn = sqlite3.connect(path)
    with conn:
        for hour, n in ((day, 2), (day + 3600, 3), (day + 86400, 5)):
            conn.execute(
                "INSERT INTO attempt_rollups (width_s, queue_id, bucket, tenant, outcome,"
                " category, n, processing_s, items, retry_delay_s, efficiency_sum, efficiency_n,"
                " first_started_at) VALUES (3600, 'q', ?, 't', 'completed', '', ?, ?, 0, 0, 0,"
                " 0, ?)",
                (hour, n, n * 1.5, hour + 7),
            )
            conn.execute(
                "INSERT INTO attempt_latency_rollups (queue_id, bucket, bin, n)"
                " VALUES ('q', ?, 4, ?)",
                (hour, n),
            )
    conn.close()
    backend = SQLiteBackend(f"sqlite:///{path}")
    backend.close()
    conn = sqlite3.connect(path)
    days = conn.execute(
        "SELECT bucket, n, processing_s, first_started_at FROM attempt_rollups"
        " WHERE width_s = 0 ORDER BY bucket"
    ).fetchall()
    assert days == [(0, 10, 15.0, day + 7)]
    latency = conn.execute(
        "SELECT width_s, bucket, n FROM attempt_latency_rollups ORDER BY width_s DESC, bucket"
    ).fetchall()
    assert latency == [
        (3600, day, 2),
        (3600, day + 3600, 3),
        (3600, day + 86400, 5),
        (0, 0, 10),
    ]
    conn.close()


def test_the_message_id_index_becomes_sorted_keys_and_a_log(tmp_path: Path) -> None:
    """Migration 0014 on a store with messages: their Message-ID keys fill the sorted table,
    the index is gone, and from then on the triggers keep the keys: a new message's waits in
    the log, a deleted or renamed message's leaves the sorted table (a renamed one's comes
    anew), and a merge takes the log's live keys in."""
    from chunksync.store import FolderKey, MailMessage, MessageStore

    path = tmp_path / "db.sqlite"
    backend = SQLiteBackend(f"sqlite:///{path}", migrate=False)
    backend.apply_migrations_only(upto=13)
    backend.close()
    conn = sqlite3.connect(path)
    with conn:  # as the code before 0014 stored them
        for uid, message_id in ((1, "<1@x>"), (2, "<2@x>"), (3, "<3@x>"), (4, None)):
            conn.execute(
                "INSERT INTO mail_messages (account, folder, uidvalidity, uid, size, sha256, raw,"
                " message_id, stored_at, updated_at) VALUES ('a@example.com', 'INBOX', 7, ?,"
                " 4, 'x', x'00', ?, 0, 0)",
                (uid, message_id),
            )
    conn.close()
    inbox = FolderKey("a@example.com", "INBOX", 7)
    backend = SQLiteBackend(f"sqlite:///{path}")
    store = MessageStore(backend)
    conn = sqlite3.connect(path)
    keys = "SELECT message_id, folder, uid FROM mail_message_ids ORDER BY uid"
    logged = "SELECT message_id, folder, uid FROM mail_message_ids_new ORDER BY rowid"
    try:
        assert conn.execute(keys).fetchall() == [(f"<{u}@x>", "INBOX", u) for u in (1, 2, 3)]
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        assert "mail_messages_message_id" not in names
        store.put(inbox, [MailMessage(5, b"Message-ID: <5@x>\r\n\r\nbody\r\n")])
        store.delete(inbox, [1])
        store.rename_folder(inbox.account, "INBOX", "Old")
        assert conn.execute(keys).fetchall() == []  # 1 deleted, 2 and 3 renamed
        assert conn.execute(logged).fetchall() == [
            ("<5@x>", "INBOX", 5), ("<2@x>", "Old", 2), ("<3@x>", "Old", 3), ("<5@x>", "Old", 5)
        ]  # fmt: skip
        with backend.transaction() as session:
            store.merge_message_ids(session)
        # The stale key (5 in INBOX, renamed since) is left out; the log is empty.
        assert conn.execute(keys).fetchall() == [(f"<{u}@x>", "Old", u) for u in (2, 3, 5)]
        assert conn.execute(logged).fetchall() == []
    finally:
        conn.close()
        backend.close()


def test_the_queues_of_before_are_counted(tmp_path: Path) -> None:
    """0016 counts the chunks each queue already holds; from then on the triggers keep it."""
    path = tmp_path / "db.sqlite"
    backend = SQLiteBackend(f"sqlite:///{path}", migrate=False)
    backend.apply_migrations_only(upto=15)
    backend.close()
    conn = sqlite3.connect(path)
    with conn:
        for queue, chunks in (("a", 3), ("b", 0), ("c", 2)):
            conn.execute(
                "INSERT INTO queues (id, name, source, kind, created_at, updated_at)"
                " VALUES (?, ?, 'x://', 'x', 0, 0)",
                [queue, queue],
            )
            for seq in range(chunks):
                conn.execute(
                    "INSERT INTO chunks (id, queue_id, seq, payload, run_after, created_at,"
                    " updated_at) VALUES (?, ?, ?, '{}', 0, 0, 0)",
                    [f"{queue}{seq}", queue, seq],
                )
    conn.close()
    SQLiteBackend(f"sqlite:///{path}").close()  # migrates
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("DELETE FROM chunks WHERE id = 'a0'")
        kept = dict(conn.execute("SELECT id, n_chunks FROM queues").fetchall())
    conn.close()
    assert kept == {"a": 2, "b": 0, "c": 2}
