"""The PostgreSQL backend's own duties: every psycopg error converted, clear connection failures,
two connections per process, LISTEN/NOTIFY wake-ups and the maintenance election, and values
read alike in text and in binary form."""

from __future__ import annotations

import inspect
import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg
import psycopg.errors
import psycopg_pool
import pytest

from chunksync.app import App
from chunksync.backends.pgerrors import PsycopgErrors, convert_error
from chunksync.backends.postgres import PostgresBackend, _configure
from chunksync.exceptions import (
    BackendBusy,
    BackendError,
    BackendUnavailable,
    IntegrityConflict,
    RaceLost,
    SchemaError,
)
from chunksync.models import ChunkStatus
from tests.servers.pgcluster import PASSWORD_USER, PgCluster, free_port

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(60)]


def wait_for(predicate: Callable[[], Any], timeout_s: float = 10.0, what: str = "state") -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.02)


def _psycopg_error_classes() -> list[type[psycopg.Error]]:
    found: set[type[psycopg.Error]] = set()
    for module in (psycopg, psycopg.errors, psycopg_pool):
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, psycopg.Error):
                found.add(cls)
    return sorted(found, key=lambda c: (c.__module__, c.__qualname__))


def _expected(cls: type[psycopg.Error]) -> type[BackendError]:
    state = cls.sqlstate
    if state in {"40001", "40P01"}:
        return RaceLost
    if state == "55P03":
        return BackendBusy
    if state is not None and state.startswith("23"):
        return IntegrityConflict
    if state is not None and (
        state[:2] in {"08", "28"} or state in {"3D000", "53300", "57P01", "57P02", "57P03"}
    ):
        return BackendUnavailable
    if state is None and issubclass(cls, psycopg.OperationalError | psycopg.InterfaceError):
        return BackendUnavailable
    if state in {"42P01", "42703"}:
        return SchemaError
    return BackendError


def test_every_psycopg_exception_is_converted() -> None:
    """Through PsycopgErrors, the one boundary every psycopg call runs in: each class psycopg
    has leaves as the chunksync error it maps to, raised from the driver's, without the
    password."""
    classes = _psycopg_error_classes()
    assert len(classes) > 200  # every SQLSTATE class psycopg knows, and the client-side ones
    boundary = PsycopgErrors("postgresql://u:hunter22@h/db")
    for cls in classes:
        original = cls("boom")
        with pytest.raises(BackendError) as caught, boundary:
            raise original
        converted = caught.value
        assert type(converted) is _expected(cls), cls
        assert converted.__cause__ is original, cls
        assert converted.sqlstate == cls.sqlstate, cls
        assert "hunter22" not in str(converted)
    with pytest.raises(RuntimeError), boundary:  # anything else passes through untouched
        raise RuntimeError("not the driver's")


def test_a_refused_password_is_one_clear_redacted_sentence(pg_cluster: PgCluster) -> None:
    url = pg_cluster.url("postgres", user=PASSWORD_USER, password="wrong-secret")
    with pytest.raises(BackendUnavailable) as caught:
        PostgresBackend(url)
    message = str(caught.value)
    assert "wrong-secret" not in message and "***" in message
    assert "password authentication failed" in message and caught.value.sqlstate == "28P01"
    assert "\n" not in message and message.count(": ") <= 2
    assert isinstance(caught.value.__cause__, psycopg.OperationalError)
    right = pg_cluster.url("postgres", user=PASSWORD_USER, password="right-secret")
    PostgresBackend(right, migrate=False).close()


def test_no_server_is_backend_unavailable() -> None:
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/nothing"
    with pytest.raises(BackendUnavailable, match="cannot connect to PostgreSQL at") as caught:
        PostgresBackend(url, connect_timeout=2)
    assert "\n" not in str(caught.value)


def test_a_missing_database_is_created_only_when_asked(pg_cluster: PgCluster) -> None:
    url = pg_cluster.url("created_on_demand")
    with pytest.raises(BackendUnavailable) as caught:
        PostgresBackend(url, create=False)
    assert caught.value.sqlstate == "3D000"
    try:
        with PostgresBackend(url) as backend:
            assert backend.schema_version() >= 1
    finally:
        pg_cluster.drop_database("created_on_demand")


def _connections(url: str) -> dict[str, int]:
    with psycopg.connect(url, autocommit=True, application_name="observer") as conn:
        rows = conn.execute(
            "SELECT application_name, COUNT(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND application_name LIKE 'chunksync-%' "
            "GROUP BY 1"
        ).fetchall()
    return {str(name): int(n) for name, n in rows}


@pytest.mark.parametrize(("db_connections", "most"), [(None, 5), (1, 2)])
def test_a_worker_process_uses_at_most_its_connections(
    pg_url: str, db_connections: int | None, most: int
) -> None:
    """Eight slots: a pool of at most four (slots + 1, capped), or the one asked for, and the
    connection that listens for work."""
    with App(pg_url) as app:
        gate = threading.Event()
        app.handler("slow")(lambda ctx: gate.wait(5) and None)
        queue = app.create_queue("slow", payloads=list(range(40)))
        worker = app.worker(concurrency=8, poll_s=0.05, batch=2, db_connections=db_connections)
        seen: list[dict[str, int]] = []
        worker.start()
        try:
            wait_for(lambda: app.manager.get_queue(queue.id).totals[ChunkStatus.PROCESSING] >= 8)
            for _ in range(20):
                seen.append(_connections(pg_url))
                time.sleep(0.02)
            gate.set()
            wait_for(lambda: app.manager.get_queue(queue.id).status == "completed")
        finally:
            gate.set()
            worker.stop()
    assert seen and max(n for sample in seen for n in sample.values()) <= most
    assert len({name for sample in seen for name in sample}) == 1


def test_wake_ups_arrive_through_notify(pg_url: str) -> None:
    woken = threading.Event()
    with PostgresBackend(pg_url) as listener, App(pg_url) as app:
        unsubscribe = listener.subscribe_work(woken.set)
        # The LISTEN connection fires once when it comes up: wait for that, not for a while.
        assert woken.wait(30), "the LISTEN connection never came up"
        woken.clear()
        app.handler("noop")(lambda ctx: None)
        queue = app.create_queue("noop", payloads=[1])
        assert woken.wait(5), "no wake-up after an insert"
        woken.clear()
        token, (chunk,) = app.manager.claim("w", ["noop"])
        assert not woken.wait(0.5), "a claim must not wake anyone"
        app.manager.release(chunk, token, refund=True)
        assert woken.wait(5), "no wake-up after a release"
        woken.clear()
        app.manager.pause_queue(queue.id)
        app.manager.resume_queue(queue.id)
        assert woken.wait(5), "no wake-up after a resume"
        unsubscribe()


def test_one_maintenance_leader_with_takeover(pg_url: str) -> None:
    first = PostgresBackend(pg_url)
    second = PostgresBackend(pg_url)
    try:
        wait_for(lambda: first.is_maintenance_leader("a"), 30, "the first leader")
        assert not second.is_maintenance_leader("b")
        first.close()  # its connection closes: the server frees the lock
        wait_for(lambda: second.is_maintenance_leader("b"), 30, "the takeover")
    finally:
        first.close()
        second.close()


def test_a_single_statement_is_retried_when_busy(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with PostgresBackend(pg_url) as backend:
        from chunksync.backends import postgres

        real = postgres.PostgresSession.fetch_all
        failures = iter([True, True, False])

        def flaky(self: postgres.PostgresSession, name: str, params: Any = None) -> Any:
            if next(failures):
                raise convert_error(psycopg.errors.DeadlockDetected("deadlock"))
            return real(self, name, params)

        monkeypatch.setattr(postgres.PostgresSession, "fetch_all", flaky)
        row = backend.fetch_one("now")
        assert row is not None and isinstance(row["now"], float)


def test_uuids_and_json_read_as_their_text_in_either_form(pg_url: str) -> None:
    """`Session.fetch_table` reads in binary form, every other read in text: a uuid and a JSON
    value come back as the same text either way (the models parse JSON themselves)."""
    query = (
        "SELECT '0192f0c4-1b2a-7c3d-8e4f-a5b6c7d8e9f0'::uuid, '{\"a\": [1, \"é\"]}'::jsonb,"
        " '\"text\"'::jsonb, '{\"b\":  2}'::json, NULL::uuid"
    )
    with psycopg.connect(pg_url, autocommit=True) as conn:
        _configure(conn)
        read = [conn.cursor(binary=binary).execute(query).fetchone() for binary in (False, True)]
    assert (
        read[0]
        == read[1]
        == (
            "0192f0c4-1b2a-7c3d-8e4f-a5b6c7d8e9f0",
            '{"a": [1, "é"]}',
            '"text"',
            '{"b":  2}',
            None,
        )
    )
