"""An in-flight quota on a real PostgreSQL: two claims at once cannot both keep room that only
one of them may take (the second, holding the capped tenant's row after the first's commit,
counts again and gives back what it took too many), and claims of different tenants' chunks
do not wait for each other."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg

from chunksync import sql
from chunksync.app import App
from chunksync.backends.base import Session
from chunksync.backends.postgres import to_psycopg
from chunksync.manager import Manager
from chunksync.models import ChunkStatus, claimed_chunks
from chunksync.tenants import keep_quotas
from tests.integration.test_postgres_backend import wait_for

# The previous release's first statement of a claim while any tenant had a quota.
PREVIOUS_RELEASE_LOCK = (
    "SELECT id FROM tenants WHERE max_in_flight IS NOT NULL ORDER BY id FOR UPDATE"
)


def _waiting_on_a_lock(url: str) -> bool:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT COUNT(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock'"
        ).fetchone()
        return bool(row and row[0])


def _capped_queue(m: Manager, tenant: str, quota: int = 1) -> str:
    m.tenants.set(tenant, actor="test", reason="race", max_in_flight=quota)
    return m.create_queue(tenant, "job:", "job", [{"n": i} for i in range(10)], tenant=tenant).id


@contextmanager
def _capped_app(url: str) -> Iterator[App]:
    """An app with a handler for "job" and a queue of 10 chunks of tenant "capped" (quota 1)."""
    with App(url) as app:
        app.handler("job")(lambda ctx: None)
        _capped_queue(app.manager, "capped")
        yield app


def _params(m: Manager, queue_id: str | None = None) -> dict[str, Any]:
    return {
        "token": str(uuid.uuid4()),
        "lease_s": 30.0,
        "worker_id": "first",
        "limit": 1,
        "kinds": ["job"],
        "exclude": [],
        "queue_id": queue_id,
        "aging_s": m.aging_s,
    }


def _claim_in(app: App, s: Session, queue_id: str | None = None) -> int:
    """A claim of one chunk in the transaction `s`, as Manager.claim's with a quota: how many
    it kept."""
    params = _params(app.manager, queue_id)
    chunks = claimed_chunks(*s.fetch_table("claim_chunks", params))
    return len(keep_quotas(s, app.backend.list_param, params["token"], chunks))


def _claim_elsewhere(url: str, got: list[int], queue_id: str | None = None) -> threading.Thread:
    """Another process's claim of up to 5 chunks (its own pool), on a thread not yet started."""

    def claim() -> None:
        with App(url) as elsewhere:
            got.append(
                len(elsewhere.manager.claim("second", ["job"], limit=5, queue_id=queue_id)[1])
            )

    return threading.Thread(target=claim)


def test_a_claim_gives_back_what_a_concurrent_claim_of_a_capped_tenant_made_too_many(
    pg_url: str,
) -> None:
    with _capped_app(pg_url) as app:
        m = app.manager
        second: list[int] = []
        other = _claim_elsewhere(pg_url, second)
        with app.backend.transaction() as s:  # the first claim, not yet committed
            assert _claim_in(app, s) == 1
            other.start()  # it counts no chunk in flight, claims one, and waits for the row
            wait_for(lambda: _waiting_on_a_lock(pg_url), 30.0, "the second claim to wait")
        other.join(60)
        assert second == [0]  # it counted the first claim's chunk once that committed
        held = m.list_chunks(status=ChunkStatus.PROCESSING)
        assert [c.worker_id for c in held] == ["first"]
        # What it gave back waits with its attempt and its place kept.
        assert all(c.attempts == 0 for c in m.list_chunks(status=ChunkStatus.PENDING))


def test_a_claim_of_the_previous_release_and_one_of_this_one_keep_the_quota(pg_url: str) -> None:
    # A rolling upgrade: the previous release holds every capped tenant's row, then counts.
    with _capped_app(pg_url) as app:
        m = app.manager
        second: list[int] = []
        other = _claim_elsewhere(pg_url, second)
        with psycopg.connect(pg_url) as previous:  # its claim, not yet committed
            previous.execute(PREVIOUS_RELEASE_LOCK)
            claim = to_psycopg(sql.queries("postgres")["claim_chunks"])
            assert len(previous.execute(claim, _params(m)).fetchall()) == 1
            other.start()
            wait_for(lambda: _waiting_on_a_lock(pg_url), 30.0, "the second claim to wait")
            previous.commit()
        other.join(60)
        assert second == [0]
        assert len(m.list_chunks(status=ChunkStatus.PROCESSING)) == 1


def test_claims_of_different_capped_tenants_do_not_wait_for_each_other(pg_url: str) -> None:
    with App(pg_url) as app:
        app.handler("job")(lambda ctx: None)
        m = app.manager
        first_queue = _capped_queue(m, "a")
        other_queue = _capped_queue(m, "b", quota=2)
        second: list[int] = []
        other = _claim_elsewhere(pg_url, second, queue_id=other_queue)
        with app.backend.transaction() as s:  # a's claim, holding a's row until it commits
            assert _claim_in(app, s, first_queue) == 1
            other.start()
            other.join(20)  # until 2026-12-06 it waited for a's row: every claim held them all
            assert second == [2], "b's claim waited for a's"
        assert len(m.list_chunks(status=ChunkStatus.PROCESSING)) == 3
