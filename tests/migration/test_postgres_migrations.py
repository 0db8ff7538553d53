"""schema.sql is the truth: the numbered migrations must build the same PostgreSQL catalog."""

from __future__ import annotations

from importlib import resources
from typing import Any

import psycopg
import pytest

from chunksync import sql
from chunksync.backends.migrate import plan
from chunksync.backends.plan import effect
from chunksync.backends.postgres import PostgresBackend
from chunksync.deps.model import Limits, Rate
from chunksync.exceptions import SchemaError
from chunksync.manager import Manager

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(60)]

CATALOG = {
    "columns": """
        SELECT table_name, column_name, data_type, is_nullable, column_default, is_identity
        FROM information_schema.columns WHERE table_schema = 'public'
        ORDER BY 1, 2""",
    "indexes": "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1",
    "constraints": """
        SELECT c.conrelid::regclass::text, c.conname, pg_get_constraintdef(c.oid)
        FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
        WHERE n.nspname = 'public' ORDER BY 1, 2""",
    "triggers": """
        SELECT tgname, pg_get_triggerdef(oid) FROM pg_trigger WHERE NOT tgisinternal ORDER BY 1""",
    "functions": """
        SELECT p.proname, pg_get_functiondef(p.oid)
        FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE n.nspname = 'public' ORDER BY 1, 2""",  # overloads in their text's order, not oid's
    "views": """
        SELECT viewname, definition FROM pg_views WHERE schemaname = 'public' ORDER BY 1""",
    "policies": """
        SELECT tablename, policyname, roles::text[], cmd, qual, with_check
        FROM pg_policies WHERE schemaname = 'public' ORDER BY 1, 2""",
    "row_security": """
        SELECT relname, relrowsecurity, relforcerowsecurity FROM pg_class
        WHERE relnamespace = 'public'::regnamespace AND relkind = 'r' ORDER BY 1""",
    "versions": "SELECT version, name FROM schema_version ORDER BY 1",
}


def catalog(url: str) -> dict[str, list[tuple[Any, ...]]]:
    with psycopg.connect(url, autocommit=True) as conn:
        return {name: conn.execute(q.encode()).fetchall() for name, q in CATALOG.items()}


def test_migrations_build_the_schema(pg_empty_url: str, pg_cluster: Any) -> None:
    other = pg_cluster.create_database("migrated_only", "template0")
    try:
        PostgresBackend(pg_empty_url).close()  # schema.sql on an empty database
        backend = PostgresBackend(other, migrate=False)
        backend.apply_migrations_only()
        assert backend.schema_version() == sql.latest_version("postgres")
        backend.close()
        from_schema, from_migrations = catalog(pg_empty_url), catalog(other)
        assert from_schema["columns"], "schema.sql created nothing"
        for part in CATALOG:
            assert from_schema[part] == from_migrations[part], part
    finally:
        pg_cluster.drop_database("migrated_only")


def test_the_health_interface_is_written_once_in_its_migrations() -> None:
    """No schema file keeps a hand copy of the SQL health interface: schema.sql includes the
    migrations that define it, and the catalog comparison above covers the result."""
    folder = resources.files("chunksync.sql").joinpath("postgres")
    for entry in folder.iterdir():
        if entry.name.startswith("schema") and entry.name.endswith(".sql"):
            text = entry.read_text(encoding="utf-8")
            assert "FUNCTION log_chunk_health_metrics" not in text, entry.name
            assert "FUNCTION get_queue_health_summary" not in text, entry.name
    full = sql.schema("postgres")
    for migration in sql.migrations("postgres"):
        if migration.name in {"health_interface", "compact_attempts"}:
            assert migration.sql.strip() in full, migration.name


def test_a_partly_migrated_database_is_brought_up_to_date(pg_empty_url: str) -> None:
    first = sql.migrations("postgres")[0]
    backend = PostgresBackend(pg_empty_url, migrate=False)
    backend.apply_migrations_only(upto=first.version)
    assert backend.schema_version() == first.version
    assert backend.migrate() == sql.latest_version("postgres")
    assert backend.migrate() == sql.latest_version("postgres")
    backend.close()


def test_tables_without_a_version_are_refused(pg_empty_url: str) -> None:
    with psycopg.connect(pg_empty_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE chunks (id int)")
    with pytest.raises(SchemaError, match="no schema version"):
        PostgresBackend(pg_empty_url)


def test_concurrent_first_starts_migrate_once(pg_empty_url: str) -> None:
    import threading

    errors: list[BaseException] = []

    def start() -> None:
        try:
            PostgresBackend(pg_empty_url).close()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    versions = catalog(pg_empty_url)["versions"]
    assert [v for v, _ in versions] == [m.version for m in sql.migrations("postgres")]


def test_all_time_rollups_are_built_from_the_hours_already_kept(pg_empty_url: str) -> None:
    """Migration 0016 on a database with history: the all-time rows are the sums of the hours,
    and the hourly latency histograms stay, with the all-time one beside them."""
    backend = PostgresBackend(pg_empty_url, migrate=False)
    backend.apply_migrations_only(upto=15)
    day = 20_000 * 86400
    queue = "00000000-0000-0000-0000-000000000001"
    with psycopg.connect(pg_empty_url, autocommit=True) as conn:
        for hour, n in ((day, 2), (day + 3600, 3), (day + 86400, 5)):
            conn.execute(
                "INSERT INTO attempt_rollups (width_s, queue_id, bucket, tenant, outcome,"
                " category, n, processing_s, items, retry_delay_s, efficiency_sum, efficiency_n,"
                " first_started_at) VALUES (3600, %s, %s, 't', 'completed', '', %s, %s, 0, 0, 0,"
                " 0, %s)",
                (queue, hour, n, n * 1.5, hour + 7),
            )
            conn.execute(
                "INSERT INTO attempt_latency_rollups (queue_id, bucket, bin, n)"
                " VALUES (%s, %s, 4, %s)",
                (queue, hour, n),
            )
    assert backend.migrate() == sql.latest_version("postgres")
    backend.close()
    with psycopg.connect(pg_empty_url, autocommit=True) as conn:
        days = conn.execute(
            "SELECT bucket, n, processing_s, first_started_at FROM attempt_rollups"
            " WHERE width_s = 0 ORDER BY bucket"
        ).fetchall()
        latency = conn.execute(
            "SELECT width_s, bucket, n FROM attempt_latency_rollups ORDER BY width_s DESC, bucket"
        ).fetchall()
    assert days == [(0, 10, 15.0, day + 7)]
    assert latency == [
        (3600, day, 2),
        (3600, day + 3600, 3),
        (3600, day + 86400, 5),
        (0, 0, 10),
    ]


def test_the_chunks_of_dependencies_limited_before_0025_move_to_their_groups(
    pg_empty_url: str,
) -> None:
    """Migrations 0025 and 0026 on a database with history: each unfinished chunk of a
    dependency limited by connections, by a rate, or by both ends in its dependency's group
    (1,200 of one dependency: two of 0026's batches of 1,000), a completed one and every chunk of an
    unlimited or gated dependency in group ''; as `chunksync_claim_group()` and
    `Limits.any` say."""
    backend = PostgresBackend(pg_empty_url, migrate=False)
    backend.apply_migrations_only(upto=24)
    limits = {"conn": (2, None), "rate": (None, 50.0), "both": (2, 50.0), "none": (None, None)}
    with psycopg.connect(pg_empty_url, autocommit=True) as conn:
        for n, (name, (connections, rate)) in enumerate(limits.items()):
            conn.execute(
                "INSERT INTO dependencies (name, connections, rate_units, rate_period_s, flow,"
                " updated_at) VALUES (%s, %s, %s, %s, %s, 0)",
                (name, connections, rate, 1.0 if rate else None, "ok"),
            )
            queue = f"00000000-0000-0000-0000-00000000000{n + 1}"
            conn.execute(
                "INSERT INTO queues (id, name, source, kind, dependency, created_at, updated_at)"
                " VALUES (%s, %s, 'job://x', 'job', %s, 0, 0)",
                (queue, name, name),
            )
            conn.execute(
                "INSERT INTO chunks (id, queue_id, seq, payload, status, run_after, created_at,"
                " updated_at) SELECT gen_random_uuid(), %s, g, '{}',"
                " (ARRAY['pending', 'dead', 'completed', 'processing'])[g %% 4 + 1], 0, 0, 0"
                " FROM generate_series(1, %s) g",
                (queue, 1600 if name == "rate" else 8),
            )
        conn.execute("UPDATE dependencies SET flow = 'stopped' WHERE name = 'none'")
    assert backend.migrate() == sql.latest_version("postgres")
    backend.close()
    with psycopg.connect(pg_empty_url, autocommit=True) as conn:
        groups = conn.execute(
            "SELECT q.name, c.status = 'completed', c.claim_group, COUNT(*),"
            " chunksync_claim_group(q.name) FROM chunks c JOIN queues q ON q.id = c.queue_id"
            " GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
        ).fetchall()
        batches = conn.execute(
            "SELECT COUNT(DISTINCT xmin::text) FROM chunks WHERE claim_group <> ''"
        ).fetchone()
    assert batches == (2,)
    assert groups == [
        ("both", False, "both", 6, "both"),
        ("both", True, "", 2, "both"),
        ("conn", False, "conn", 6, "conn"),
        ("conn", True, "", 2, "conn"),
        ("none", False, "", 6, ""),
        ("none", True, "", 2, ""),
        ("rate", False, "rate", 1200, "rate"),
        ("rate", True, "", 400, "rate"),
    ]
    for name, (connections, rate) in limits.items():
        any_limit = Limits(connections, Rate(rate, 1.0) if rate else None).any
        assert any_limit is (name != "none")


def test_row_security_keeps_a_databases_history_in_sight(pg_owned: tuple[str, str]) -> None:
    """Migration 0017 on a database with history, owned by a plain role: everything stored
    before is still there for chunksync (the default tenant's messages), and nothing for a
    session without the setting. 0023 counts the queue's chunks under row security."""
    url, _ = pg_owned
    backend = PostgresBackend(url, migrate=False)
    backend.apply_migrations_only(upto=16)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO queues (id, tenant, name, source, kind, created_at, updated_at)"
            " VALUES ('00000000-0000-0000-0000-000000000001', 'acme', 'q', 'x://', 'x', 0, 0)"
        )
        for seq in (1, 2):  # counted by 0023, under row security as the owner
            conn.execute(
                "INSERT INTO chunks (id, queue_id, tenant, seq, payload, run_after, created_at,"
                " updated_at) VALUES (gen_random_uuid(), '00000000-0000-0000-0000-000000000001',"
                " 'acme', %s, '{}', 0, 0, 0)",
                [seq],
            )
        conn.execute(
            "INSERT INTO mail_messages (account, folder, uidvalidity, uid, size, sha256, raw,"
            " stored_at, updated_at) VALUES ('a@b', 'INBOX', 1, 1, 1, 'h', 'x', 0, 0)"
        )
    assert backend.migrate() == sql.latest_version("postgres")
    assert [q.tenant for q in Manager(backend).list_queues()] == ["acme"]
    with psycopg.connect(url, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM queues").fetchone() == (0,)  # no setting
        conn.execute("SELECT set_config('chunksync.tenant', '*', false)")
        assert conn.execute("SELECT tenant FROM mail_messages").fetchall() == [("default",)]
        assert conn.execute("SELECT tenant FROM mail_folders").fetchall() == []
        assert conn.execute("SELECT n_chunks FROM queues").fetchall() == [(2,)]
    backend.close()


def _index(url: str, name: str) -> tuple[Any, ...] | None:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(
            "SELECT i.indisvalid, pg_get_indexdef(i.indexrelid) FROM pg_index i"
            " WHERE i.indexrelid = to_regclass(%s)",
            [name],
        ).fetchone()


def test_an_interrupted_online_migration_runs_again_from_its_start(pg_empty_url: str) -> None:
    """0018 builds its index concurrently, outside a transaction: a build that fails leaves an
    invalid index behind and records nothing; the next `migrate` drops it and builds it again."""
    backend = PostgresBackend(pg_empty_url, migrate=False)
    backend.apply_migrations_only(upto=17)
    with psycopg.connect(pg_empty_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO queues (id, name, source, kind, created_at, updated_at)"
            " VALUES ('00000000-0000-0000-0000-000000000001', 'q', 'x://', 'x', 0, 0)"
        )
        for seq in (0, 1):
            conn.execute(
                "INSERT INTO chunks (id, queue_id, seq, payload, run_after, created_at, updated_at)"
                " VALUES (gen_random_uuid(), '00000000-0000-0000-0000-000000000001', %s, '{}',"
                " 0, 0, 0)",
                [seq],
            )
        with pytest.raises(psycopg.errors.UniqueViolation):  # an interrupted build's leftover
            conn.execute(
                "CREATE UNIQUE INDEX CONCURRENTLY chunks_queue_status_tenant ON chunks (queue_id)"
            )
    assert _index(pg_empty_url, "chunks_queue_status_tenant")[0] is False  # type: ignore[index]
    assert backend.migrate() == sql.latest_version("postgres")
    # 0018 dropped the leftover and built its index, which 0023 replaced in turn.
    assert _index(pg_empty_url, "chunks_queue_status_tenant") is None
    valid, definition = _index(pg_empty_url, "chunks_queue_open")  # type: ignore[misc]
    assert valid is True and "(queue_id, status, tenant)" in definition
    assert _index(pg_empty_url, "chunks_queue_status") is None  # the index it replaces
    assert dict(catalog(pg_empty_url)["versions"])[18] == "status_index_with_tenant (works with 17)"
    backend.close()


def test_a_process_waiting_for_the_migration_lock_holds_no_snapshot(pg_empty_url: str) -> None:
    """CREATE INDEX CONCURRENTLY waits for every transaction with an older snapshot: a
    process waiting for the migration lock inside a statement would hold one, and each would
    wait for the other. Waiters poll instead, between transactions: an index is built
    concurrently while one waits. (A poll holds a snapshot for the instant its statement runs,
    so sampling `backend_xmin` would catch one now and then; the build is the property.)"""
    import threading

    from chunksync.backends.postgres import MIGRATION_LOCK_KEY

    backend = PostgresBackend(pg_empty_url, migrate=False)
    backend.apply_migrations_only(upto=17)
    with psycopg.connect(pg_empty_url, autocommit=True) as holder:
        holder.execute("CREATE TABLE probe (x int)")
        holder.execute("SELECT pg_advisory_lock(%s)", [MIGRATION_LOCK_KEY])
        done: list[int] = []
        waiter = threading.Thread(target=lambda: done.append(backend.migrate()))
        waiter.start()
        blocked = []
        for _ in range(10):
            blocked += holder.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                " AND pid <> pg_backend_pid() AND wait_event_type = 'Lock'"
            ).fetchall()
            waiter.join(0.05)
        holder.execute("SET statement_timeout = '10s'")  # a held snapshot: cancelled, failing
        holder.execute("CREATE INDEX CONCURRENTLY probe_x ON probe (x)")
        assert not blocked and not done  # still waiting, in no lock queue
        holder.execute("SELECT pg_advisory_unlock(%s)", [MIGRATION_LOCK_KEY])
        waiter.join(30)
    assert done == [sql.latest_version("postgres")]
    backend.close()


def test_a_backfill_runs_in_batches_each_committing_on_its_own(
    pg_empty_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A statement after `-- in batches --`, in a migration outside a transaction, runs again
    until it changes no row: 2,500 rows in batches of 1,000 are three transactions (three
    xmins), and the plan calls it online."""
    backend = PostgresBackend(pg_empty_url)
    with psycopg.connect(pg_empty_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE probe (id int PRIMARY KEY, note text)")
        conn.execute("INSERT INTO probe SELECT g, NULL FROM generate_series(1, 2500) g")
    latest = sql.latest_version("postgres")
    backfill = sql.Migration(
        latest + 1,
        "probe_note",
        "-- expand --\n-- outside a transaction --\n-- in batches --\n"
        "UPDATE probe SET note = 'done'\n"
        "WHERE id IN (SELECT id FROM probe WHERE note IS NULL ORDER BY id LIMIT 1000);\n",
    )
    shipped = sql.migrations("postgres")
    monkeypatch.setattr(sql, "migrations", lambda dialect: (*shipped, backfill))
    step = plan(backend).steps[0]
    assert (step.version, step.outside, step.online) == (latest + 1, True, True)
    assert "one batch's row locks at a time" in step.effects[0].lock
    assert backend.migrate() == latest + 1
    with psycopg.connect(pg_empty_url, autocommit=True) as conn:
        done = "SELECT note, COUNT(*), COUNT(DISTINCT xmin::text) FROM probe GROUP BY 1"
        assert conn.execute(done).fetchall() == [("done", 2500, 3)]
        name = conn.execute("SELECT name FROM schema_version WHERE version = %s", [latest + 1])
        assert str(name.fetchone()[0]).startswith("probe_note (works with ")  # type: ignore[index]
    backend.close()


@pytest.mark.parametrize(
    "change",
    [
        "ALTER TABLE t SET (fillfactor = 45)",
        "ALTER TABLE t SET (autovacuum_vacuum_scale_factor = 0.02,"
        " toast.autovacuum_enabled = false)",
        "ALTER TABLE t SET (vacuum_truncate = false, vacuum_index_cleanup = 'on',"
        " parallel_workers = 2)",
        "ALTER TABLE t RESET (fillfactor)",
        "ALTER TABLE t SET (fillfactor = 90, user_catalog_table = true)",
        "ALTER TABLE t SET (toast_tuple_target = 256)",
        "ALTER INDEX t_pkey SET (fillfactor = 50)",
        "ALTER INDEX t_pkey SET (deduplicate_items = off, fillfactor = 70)",
        "ALTER INDEX t_pkey RESET (fillfactor)",
        "ALTER INDEX t_pkey SET TABLESPACE pg_default",
    ],
)
def test_a_storage_parameter_is_read_for_the_lock_postgresql_takes(
    pg_empty_url: str, change: str
) -> None:
    """`migrate --plan` calls a storage parameter's change online exactly when PostgreSQL
    takes no stronger lock than SHARE UPDATE EXCLUSIVE for it (a fillfactor for the chunks'
    HOT updates or their keys' room, an autovacuum setting): read from pg_locks inside the
    change's transaction, on the table and its index."""
    with psycopg.connect(pg_empty_url) as conn:
        conn.execute("CREATE TABLE t (id int PRIMARY KEY)")
        conn.commit()
        conn.execute(change.encode())
        rows = conn.execute(
            "SELECT mode FROM pg_locks WHERE relation IN ('t'::regclass, 't_pkey'::regclass)"
            " AND pid = pg_backend_pid()"
        ).fetchall()
        conn.rollback()
    taken = {str(mode) for (mode,) in rows}
    found = effect("postgres", f"{change};")
    assert found.online is (taken <= {"ShareUpdateExclusiveLock"}), (taken, found)
    assert ("SHARE UPDATE EXCLUSIVE" in found.lock) is found.online
