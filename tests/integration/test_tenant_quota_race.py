"""An in-flight quota on a real PostgreSQL: two claims at once cannot both see room that only
one of them may take (the capped tenants' rows are locked before the claim counts)."""

from __future__ import annotations

import threading
import uuid

import psycopg

from chunksync.app import App
from chunksync.models import ChunkStatus
from tests.integration.test_postgres_backend import wait_for


def _waiting_on_a_lock(url: str) -> bool:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT COUNT(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock'"
        ).fetchone()
        return bool(row and row[0])


def test_a_claim_waits_for_a_concurrent_claim_of_a_capped_tenant(pg_url: str) -> None:
    with App(pg_url) as app:
        app.handler("job")(lambda ctx: None)
        m = app.manager
        m.tenants.set("capped", actor="test", reason="race", max_in_flight=1)
        m.create_queue("q", "job:", "job", [{"n": i} for i in range(10)], tenant="capped")
        params = {
            "token": str(uuid.uuid4()),
            "lease_s": 30.0,
            "worker_id": "first",
            "limit": 1,
            "kinds": ["job"],
            "exclude": [],
            "queue_id": None,
            "aging_s": m.aging_s,
        }
        second: list[int] = []

        def claim_elsewhere() -> None:  # another process's claim: its own pool
            with App(pg_url) as elsewhere:
                second.append(len(elsewhere.manager.claim("second", ["job"], limit=5)[1]))

        other = threading.Thread(target=claim_elsewhere)
        with app.backend.transaction() as s:  # the first claim, not yet committed
            s.fetch_all("tenants_lock_capped")
            assert len(s.fetch_all("claim_chunks", params)) == 1
            other.start()
            wait_for(lambda: _waiting_on_a_lock(pg_url), 30.0, "the second claim to wait")
        other.join(60)
        assert second == [0]  # it counted the first claim's chunk once that committed
        assert len(m.list_chunks(status=ChunkStatus.PROCESSING)) == 1
