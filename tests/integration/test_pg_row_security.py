"""Row-level security on a real PostgreSQL (migration 0017), under roles that are not superusers
(a superuser bypasses row security, so the suite's usual databases cannot show it).

The database is owned by a plain role, as in production: chunksync's workers and operator see
every tenant, a request narrowed to one tenant sees that tenant alone on the same pooled
connection, a tenant's own role reads, updates and deletes only its rows, and a session that
makes no setting sees nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from chunksync.app import App
from chunksync.backends.postgres import PostgresBackend
from chunksync.exceptions import BackendError, ConfigurationError, NotFound
from chunksync.manager import Manager
from chunksync.models import ChunkStatus
from chunksync.sources.mail import SyncOptions, mail_source
from chunksync.store import MessageStore
from tests.acceptance.test_cli import one_error, run
from tests.integration.mail_helpers import run_sync

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(120)]

FAST = {"poll_s": 0.05, "time_scale": 0.001, "lease_s": 5.0}


def _two_tenants(app: App) -> dict[str, str]:
    m = app.manager
    a = m.create_queue("mail-a", "job://a", "job", [{"n": i} for i in range(5)], tenant="A")
    b = m.create_queue("mail-b", "job://b", "job", [{"n": i} for i in range(3)], tenant="B")
    return {"A": a.id, "B": b.id}


def _as(url: str, role: str) -> str:
    """The same database's URL as another role."""
    return url.replace(url.split("//")[1].split("@")[0], role)


def _names(m: Manager) -> list[str]:
    return sorted(q.name for q in m.list_queues())


def _count(conn: psycopg.Connection[Any], table: str) -> int:
    row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))).fetchone()
    return int(row[0]) if row else -1


def test_the_owner_sees_every_tenant_and_a_worker_drains_them(pg_owned: tuple[str, str]) -> None:
    url, _ = pg_owned
    app = App(url)
    try:
        app.handler("job")(lambda ctx: 1)
        queues = _two_tenants(app)
        app.worker(concurrency=2, **FAST).run_until_done(list(queues.values()), timeout_s=60)
        for queue_id in queues.values():
            chunks = app.manager.list_chunks(queue_id)
            assert {c.status for c in chunks} == {ChunkStatus.COMPLETED}
        with psycopg.connect(url, autocommit=True) as raw:
            # Row security is forced on the owner too: without chunksync's setting, nothing.
            assert _count(raw, "chunks") == 0 and _count(raw, "queues") == 0
            raw.execute("SELECT set_config('chunksync.tenant', '*', false)")
            assert _count(raw, "chunks") == 8 and _count(raw, "attempts") == 8
    finally:
        app.close()


def test_one_tenants_view_on_a_shared_pool_carries_nothing_over(pg_owned: tuple[str, str]) -> None:
    url, _ = pg_owned
    backend = PostgresBackend(url, pool_size=1)  # one connection: every use shares it
    app = App(url)
    try:
        queues = _two_tenants(app)
        as_b, as_a = backend.for_tenant("B"), backend.for_tenant("A")
        everyone, only_b, only_a = Manager(backend), Manager(as_b), Manager(as_a)
        for _ in range(2):  # turns on the one connection: each sees its own, then gives it back
            assert _names(only_b) == ["mail-b"] and len(only_b.list_chunks()) == 3
            with as_a.transaction():  # statements inside join the view's transaction
                assert _names(only_a) == ["mail-a"] and len(only_a.list_chunks()) == 5
            assert _names(everyone) == ["mail-a", "mail-b"] and len(everyone.list_chunks()) == 8
        # A chunk of tenant A is absent to tenant B's view: refused as not found, not "lost".
        chunk = app.manager.list_chunks(queues["A"])[0]
        with pytest.raises(NotFound):
            only_b.cancel_chunk(chunk.id, actor="tenant-b", reason="test")
        assert app.manager.get_chunk(chunk.id).status is ChunkStatus.PENDING
        with pytest.raises(ConfigurationError):
            backend.for_tenant(" ")
        as_b.close()  # a view closes nothing
        assert len(everyone.list_chunks()) == 8
    finally:
        backend.close()
        app.close()


def test_a_tenants_role_reaches_only_its_own_rows(pg_owned: tuple[str, str]) -> None:
    url, tenant_b = pg_owned
    app = App(url)
    try:
        queues = _two_tenants(app)
        said = run("tenants", "grant", tenant_b, "--tenant", "B", db=url).stdout
        assert f"role {tenant_b} sees tenant B only" in said
        with psycopg.connect(_as(url, tenant_b), autocommit=True) as conn:
            assert _count(conn, "chunks") == 0, "no setting: fails closed"
            for setting in ("A", "*"):  # a tenant's role cannot widen its own view
                conn.execute("SELECT set_config('chunksync.tenant', %s, false)", [setting])
                assert _count(conn, "chunks") == 0 and _count(conn, "queues") == 0
            with conn.transaction():
                conn.execute("SELECT set_config('chunksync.tenant', 'B', true)")
                assert _count(conn, "chunks") == 3 and _count(conn, "queues") == 1
                assert _count(conn, "tenants") == 0 and _count(conn, "mail_messages") == 0
                for statement, params in _reaching_a(queues["A"]):
                    assert conn.execute(statement, params).rowcount == 0, statement
                cancelled = conn.execute(
                    "UPDATE chunks SET status = 'cancelled' WHERE queue_id = %s", [queues["B"]]
                )
                assert cancelled.rowcount == 3
            assert _count(conn, "chunks") == 0, "the transaction's setting ended with it"
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("SELECT count(*) FROM tenant_roles")
        a_chunks = app.manager.list_chunks(queues["A"])
        assert len(a_chunks) == 5 and {c.status for c in a_chunks} == {ChunkStatus.PENDING}
        assert app.manager.get_queue(queues["A"]).name == "mail-a"
    finally:
        app.close()


def _reaching_a(queue_a: str) -> list[tuple[str, list[Any]]]:
    """Every way tenant B's role might read, change or remove tenant A's rows."""
    return [
        ("SELECT * FROM chunks WHERE queue_id = %s", [queue_a]),
        ("SELECT * FROM chunks WHERE tenant = 'A'", []),
        ("SELECT * FROM attempts WHERE tenant = 'A'", []),
        ("SELECT * FROM audit_log WHERE queue_id = %s", [queue_a]),
        ("UPDATE chunks SET status = 'cancelled' WHERE queue_id = %s", [queue_a]),
        ("UPDATE chunks SET tenant = 'B' WHERE tenant = 'A'", []),
        ("UPDATE queues SET status = 'paused' WHERE id = %s", [queue_a]),
        ("DELETE FROM chunks WHERE queue_id = %s", [queue_a]),
        ("DELETE FROM queues WHERE id = %s", [queue_a]),
    ]


def test_granting_names_an_existing_role_in_one_sentence(pg_owned: tuple[str, str]) -> None:
    url, tenant_b = pg_owned
    bad = run("tenants", "grant", "nobody_here", "--tenant", "B", db=url, expect=1)
    assert 'role "nobody_here" does not exist' in one_error(bad)
    bad = run("tenants", "grant", tenant_b, "--tenant", "*", db=url, expect=1)
    assert "every tenant, not one" in one_error(bad)
    app = App(url)
    try:
        with pytest.raises(BackendError, match="does not exist"):
            app.manager.tenants.grant_role("nobody_here", "B", actor="test", reason="test")
        actions = [e.action for e in app.manager.list_audit()]
        assert actions.count("tenant_role_grant") == 0  # nothing half-written
    finally:
        app.close()


def test_an_alert_about_a_queue_is_its_tenants(pg_owned: tuple[str, str]) -> None:
    url, _ = pg_owned
    backend = PostgresBackend(url)
    app = App(url)
    try:
        queues = _two_tenants(app)
        for key, subject in (
            ("dead_chunks:a", queues["A"]),
            ("slo_burn:b", f"{queues['B']}:wait:1h"),
            ("no_workers", None),
        ):
            fired = {"key": key, "rule": key.split(":")[0], "subject": subject}
            backend.execute("alert_fire", {**fired, "severity": "warning", "message": "test"})
        seen = {
            who: sorted(str(r["key"]) for r in view.fetch_all("alerts_firing"))
            for who, view in (("*", backend), ("B", backend.for_tenant("B")))
        }
        assert seen["*"] == ["dead_chunks:a", "no_workers", "slo_burn:b"]
        assert seen["B"] == ["slo_burn:b"]
    finally:
        backend.close()
        app.close()


def _mbox(path: Path, n: int, tag: str) -> str:
    path.write_bytes(
        b"".join(
            b"From a@example.com Mon Jan  1 00:00:%02d 2024\nSubject: %s %d\n\n%s body %d\n\n"
            % (i, tag.encode(), i, tag.encode(), i)
            for i in range(n)
        )
    )
    return f"mbox://{path}"


def test_each_tenants_mail_is_its_own_and_an_account_is_never_shared(
    pg_owned: tuple[str, str], tmp_path: Path
) -> None:
    url, tenant_role = pg_owned
    with App(url) as app:
        mine = {t: _mbox(tmp_path / f"{t}.mbox", n, t) for t, n in (("A", 5), ("B", 3))}
        for tenant, uri in mine.items():
            run_sync(app, uri, options=SyncOptions(tenant=tenant), chunk_size=2)
            assert mail_source(app, uri, tenant).reconcile(uri).difference == 0
        everyone = list(MessageStore(app.backend).iter_messages())
        assert len(everyone) == 8  # the operator's view
        as_b = list(MessageStore(app.backend.for_tenant("B")).iter_messages())
        assert sorted(r["subject"] for r in as_b) == ["B 0", "B 1", "B 2"]
        app.manager.tenants.grant_role(tenant_role, "B", actor="test", reason="mail")
        with psycopg.connect(_as(url, tenant_role), autocommit=True) as conn, conn.transaction():
            conn.execute("SELECT set_config('chunksync.tenant', 'B', true)")
            assert _count(conn, "mail_messages") == 3 and _count(conn, "mail_folders") == 1

        # B syncing A's mailbox: A's rows are out of B's sight, and B's planning may not write
        # over A's folder: refused in one sentence before any chunk is queued.
        with pytest.raises(BackendError, match="row-level security: the row is another tenant"):
            run_sync(app, mine["A"], options=SyncOptions(tenant="B"), chunk_size=5)
        assert [q.name for q in app.manager.list_queues(tenant="B")] == [mine["B"]]
        assert len(list(MessageStore(app.backend.for_tenant("A")).iter_messages())) == 5
        assert len(list(MessageStore(app.backend.for_tenant("B")).iter_messages())) == 3


def test_a_role_that_would_see_nothing_is_told_so_at_once(pg_owned: tuple[str, str]) -> None:
    """A role that neither owns the tables nor is bound to a tenant would see an empty
    database under row security: opening it says why in one sentence instead."""
    url, other = pg_owned
    App(url).close()  # the schema, made by the owner
    with pytest.raises(ConfigurationError, match=f"the role {other} may not see every tenant"):
        PostgresBackend(_as(url, other), migrate=False)
