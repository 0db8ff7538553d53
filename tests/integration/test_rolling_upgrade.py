"""A rolling upgrade under load (tests/chaos/upgrade.py): the previous release's workers drain
20,000 chunks on PostgreSQL, this code's `chunksync migrate` runs an online migration among
them, this code's workers join (and one more of the previous release's starts on the migrated
database), then the previous release's workers stop. Nothing lost, nothing twice, every
invariant of tests/chaos/checks.py, and no claim waited a second for a lock."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from psycopg import sql

from tests.chaos.upgrade import run_upgrade
from tests.servers.pgcluster import PgCluster
from tests.servers.postgres import OWNER

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(300)]

CHUNKS = 20_000


def test_a_rolling_upgrade_loses_nothing_and_blocks_no_claim(
    pg_cluster: PgCluster, tmp_path: Path
) -> None:
    name = f"rolling_{secrets.token_hex(4)}"  # empty, owned by the plain role, as in production
    pg_cluster.admin(
        sql.SQL("CREATE DATABASE {} OWNER {} TEMPLATE template0").format(
            sql.Identifier(name), sql.Identifier(OWNER)
        )
    )
    url = pg_cluster.url(name, user=OWNER)
    try:
        up = run_upgrade(url, tmp_path, CHUNKS)
    finally:
        pg_cluster.drop_database(name)
    v, r = up.verdict, up.result
    report = "\n".join([*up.phases, up.plan, str(v), str(dict(up.done_by_pid)), up.figures()])
    print(up.figures())
    assert up.versions == {"previous": 17, "current": 28}, report  # two releases, truly
    # The plan said each would run online as an expand (outside a transaction where it builds or
    # drops an index concurrently).
    assert "0018 status_index_with_tenant: online; expand; statement by statement" in up.plan
    assert "0019 fewer_chunk_index_entries: online; expand; statement by statement" in up.plan
    assert "0020 room_for_versions_in_chunk_keys: online; expand; in one transaction" in up.plan
    assert "0021 one_index_of_chunks_in_flight: online; expand; statement by statement" in up.plan
    assert "0022 queue_chunk_totals: online; expand; in one transaction" in up.plan
    assert (
        "0023 completed_chunks_counted_by_queue: online; expand; statement by statement" in up.plan
    )
    assert (
        "0024 health_summary_counts_completed_by_queue: online; expand; in one transaction"
        in up.plan
    )
    assert "0025 claim_groups: online; expand; in one transaction" in up.plan
    assert "0026 claim_group_index: online; expand; statement by statement" in up.plan
    assert "0027 paused_claim_groups: online; expand; in one transaction" in up.plan
    assert "0028 queues_regrouping_index: online; expand; statement by statement" in up.plan
    assert up.ok and v is not None and v.lost == 0 and v.duplicated == 0, report
    assert v.chunks == CHUNKS and sum(v.by_status.values()) == CHUNKS, report
    assert not v.problems, report
    # Both releases did the work, the previous one also after the migration, and its workers
    # stopped cleanly on SIGTERM.
    assert all(up.done_by_pid[pid] > 0 for pid in up.old_pids | up.new_pids), report
    assert up.old_stop_codes == [0, 0, 0], report
    assert not [p for p in r.worker_logs if "Traceback" in p.read_text()], report
    # No claim waited a second for a lock while the migration ran (the server's lock timeout
    # says so), nor any session for a table's lock.
    assert up.claims_held_up == 0, report
    assert up.longest_lock_wait_s < 1.0, report


def test_the_probe_sees_a_claim_held_up(pg_cluster: PgCluster) -> None:
    """The check above can fail: a lock that stops claims (what a plain CREATE INDEX takes),
    held until the probe gives up, is counted as such, and its wait sampled."""
    import time

    import psycopg

    from tests.chaos.upgrade import ClaimProbe

    url = pg_cluster.create_database(f"probe_{secrets.token_hex(4)}", "template1")
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE TABLE queues (id int); CREATE TABLE chunks (id int)")
            conn.execute("CREATE TABLE attempts (id int)")
            probe = ClaimProbe(url)
            probe.start()
            with conn.transaction():
                conn.execute("LOCK TABLE chunks IN SHARE MODE")
                deadline = time.monotonic() + 60
                while not probe.claims_held_up and time.monotonic() < deadline:
                    time.sleep(0.05)
            probe.halt.set()
            probe.join(10)
    finally:
        pg_cluster.drop_database(url.rsplit("/", 1)[1])
    assert probe.claims_held_up >= 1 and probe.longest_claim_wait_s >= 1.0
