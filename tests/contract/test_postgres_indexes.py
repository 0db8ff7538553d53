"""PostgreSQL keeps no index that a chunk's transitions write for nothing (0019, 0021): a
claim and a finish are not HOT updates (a chunk's status is indexed), so each writes an entry
in every index of `chunks` whose predicate the new row meets. A tenant's reads find its chunks
without an index of them by every status, and a worker's lease reads without an index of
their own: each has a plan through an index (sequential scans turned off, the way to ask the
planner whether one exists), on a history as a fleet leaves it. A worker's reads of its own
chunks in flight and a tenant's count of them use the one index of them, chunks_in_flight; its
heartbeat finds the chunks it holds by their ids. The claim, planned once a connection (a
generic plan, blind to its parameters), still reads each lane's index in order and stops."""

from __future__ import annotations

import re
from typing import Any, cast

import psycopg
import pytest
from psycopg.sql import Literal

from chunksync import sql
from chunksync.app import App
from chunksync.backends.postgres import to_psycopg
from chunksync.deps import operate

pytestmark = pytest.mark.postgres

TENANT = {"tenant": "tenant2", "window_s": 60.0}
SEARCH = {"tenant": "tenant2", "queue_id": None, "status": None, "category": None, "pattern": None}
READS: dict[str, tuple[dict[str, Any], str | None]] = {
    # name: (its parameters, the index its plan must read, if any)
    "tenant_queued": (TENANT, None),
    "tenants_list": ({}, "chunks_in_flight"),
    "tenant_health": (TENANT, "chunks_in_flight"),
    "metrics_tenants": ({}, "chunks_queue_open"),
    # A queue's counts: its chunks but the completed ones, which are its count less those (0023).
    "get_queue": ({"id": "q2", "tenant": "tenant2"}, "chunks_queue_open"),
    "list_queues": ({"status": None}, "chunks_queue_open"),
    "list_queues_page": ({"limit": 10, "offset": 0}, "chunks_queue_open"),
    "list_queues_tenant": ({**TENANT, "status": None}, "chunks_queue_open"),
    "list_chunks_tenant": (
        {**TENANT, "queue_id": None, "status": None, "category": None, "limit": 10},
        "Index Cond: (queue_id = q.id)",  # each of its queues' chunks, none of another tenant's
    ),
    # The dashboard's search in a tenant's view: its queues' chunks, none of another tenant's.
    "chunks_search": (
        {**SEARCH, "limit": 50, "offset": 0},
        "Index Cond: (queue_id = q.id)",
    ),
    "chunks_search_count": ({**SEARCH, "status": "completed"}, "chunks_queue_open"),
    "extend_worker_leases": (
        {
            "lease_s": 30.0,
            "worker_id": "w3",
            "ids": ["00000000-0000-0000-0000-000000000002"],
            "tokens": ["00000000-0000-0000-0000-000000000001"],
        },
        "chunks_pkey",  # by the ids it holds: no index of the chunks in flight by worker
    ),
    "chunks_of_worker": ({"worker_id": "w3"}, "chunks_in_flight"),
    "find_stuck": ({"limit": 10}, None),  # all the chunks in flight
}


# A history as a fleet leaves it, for plans that say what the planner would do on one: five
# tenants' queues, most chunks finished, some waiting, a few hundred in flight across 20 workers.
HISTORY = """
INSERT INTO queues (id, name, source, kind, tenant, status, created_at, updated_at)
SELECT gen_random_uuid(), 'q' || t, 'x://', 'x', 'tenant' || t, 'active', 0, 0
FROM generate_series(1, 5) AS t;
INSERT INTO chunks (id, queue_id, tenant, seq, payload, status, run_after, lease_token,
                    lease_expires_at, worker_id, created_at, updated_at, finished_at)
SELECT gen_random_uuid(), q.id, q.tenant, n, '{}',
       CASE WHEN n % 100 = 0 THEN 'processing' WHEN n % 10 = 0 THEN 'pending' ELSE 'completed' END,
       0, CASE WHEN n % 100 = 0 THEN gen_random_uuid() END, CASE WHEN n % 100 = 0 THEN 100 END,
       CASE WHEN n % 100 = 0 THEN 'w' || (n / 100) % 20 END, n, n,
       CASE WHEN n % 10 <> 0 THEN n END
FROM queues q CROSS JOIN generate_series(1, 20000) AS n;
ANALYZE queues;
ANALYZE chunks;
"""


def _plan(conn: psycopg.Connection[Any], name: str, params: dict[str, Any]) -> str:
    text = to_psycopg(sql.queries("postgres")[name])
    with conn.transaction(force_rollback=True):  # EXPLAIN of an UPDATE plans it, runs nothing
        rows = conn.execute(b"EXPLAIN " + text, params).fetchall()
    return "\n".join(str(r[0]) for r in rows)


def test_no_index_of_chunks_by_tenant_and_every_status(pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename IN ('chunks', 'attempts')"
        ).fetchall()
    indexes = {str(name): str(definition) for name, definition in rows}
    gone = {"chunks_tenant_status", "chunks_processing", "chunks_worker", "attempts_queue_started"}
    gone |= {"chunks_leases", "chunks_tenant_in_flight"}  # one index of the chunks in flight
    assert not gone & indexes.keys()
    in_flight = indexes["chunks_in_flight"]
    assert "(tenant) INCLUDE (worker_id, lease_expires_at)" in in_flight
    assert "WHERE (status = 'processing'::text)" in in_flight


def test_tenant_and_lease_reads_have_an_index_path(pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(HISTORY.encode())
        conn.execute("SET enable_seqscan = off")
        plans = {name: _plan(conn, name, params) for name, (params, _) in READS.items()}
    for name, (_, index) in READS.items():
        assert "Seq Scan on chunks" not in plans[name], f"{name}:\n{plans[name]}"
        if index is not None:
            assert index in plans[name], f"{name}:\n{plans[name]}"


CLAIM = {
    "token": "00000000-0000-0000-0000-000000000001", "lease_s": 30.0, "worker_id": "w",
    "limit": 512, "kinds": ["x"], "exclude": [], "queue_id": None, "aging_s": 300.0,
}  # fmt: skip


def _generic_plan(conn: psycopg.Connection[Any], params: dict[str, Any]) -> str:
    """The claim's generic plan (backends.postgres.GENERIC_PLAN_QUERIES), as a worker's
    connection makes it: prepared, planned blind to its parameters, without JIT."""
    text = sql.queries("postgres")["claim_chunks"]
    names = list(dict.fromkeys(sql.NAMED_PARAM.findall(text)))  # each once, in order
    positional = sql.NAMED_PARAM.sub(lambda m: f"${names.index(m.group(1)) + 1}", text)
    types = ", ".join(_TYPES.get(n, "text") for n in names)
    with conn.transaction(force_rollback=True):
        conn.execute("SET LOCAL jit = off")
        conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        conn.execute(f"PREPARE claim ({types}) AS ".encode() + positional.encode())
        args = [f"{Literal(params[n]).as_string(conn)}::{_TYPES.get(n, 'text')}" for n in names]
        rows = conn.execute(f"EXPLAIN EXECUTE claim({', '.join(args)})".encode()).fetchall()
    return "\n".join(str(r[0]) for r in rows)


_TYPES = {"limit": "bigint", "kinds": "text[]", "exclude": "text[]"}  # the rest cast from text


@pytest.mark.parametrize(
    "case",
    ["every queue", "one queue", "one chunk", "the aged lane", "tenants at their quota"],
)
def test_the_claims_generic_plan_reads_the_runnable_chunks_in_order(pg_url: str, case: str) -> None:
    # Planned blind to its parameters, the claim must still read each lane's index in order and
    # stop after :limit, as its custom plan does: never scan or sort the chunks.
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(HISTORY.encode())
        queue = conn.execute("SELECT id FROM queues ORDER BY name LIMIT 1").fetchone()
        assert queue is not None
        params = {
            "every queue": CLAIM,
            "one queue": {**CLAIM, "queue_id": queue[0]},
            "one chunk": {**CLAIM, "limit": 1},
            "the aged lane": {**CLAIM, "aging_s": 0.0},
            "tenants at their quota": CLAIM,
        }[case]
        if case == "tenants at their quota":
            conn.execute(
                "INSERT INTO tenants (id, max_in_flight, created_at, updated_at)"
                " SELECT 'tenant' || t, 10, 0, 0 FROM generate_series(1, 3) AS t"
            )
        plan = _generic_plan(conn, params)
    assert "Seq Scan on chunks" not in plan, plan
    lanes = re.findall(r"Index Scan using (chunks_\w+) on chunks", plan)
    assert sorted(set(lanes)) == ["chunks_claim_fair", "chunks_runnable"], plan
    # Each lane reads its index in order under a LIMIT; what is sorted is what the lanes picked
    # (at most :limit a priority level), never a scan of the chunks.
    lines = plan.splitlines()
    for i, line in enumerate(lines):
        if re.search(r"Sort  \(", line):
            child = next(below for below in lines[i + 1 :] if "->" in below)
            assert not re.search(r"Scan .*on chunks", child), plan


def test_the_claim_is_planned_once_a_connection(pg_url: str) -> None:
    # psycopg prepares a statement at its sixth call; from then on the server keeps the claim's
    # generic plan, made for its own transaction (or the caller's, set back after it).
    with App(pg_url) as app:
        app.handler("noop")(lambda ctx: None)
        app.create_queue("noop://plans", ({"n": n} for n in range(200)))
        for _ in range(4):
            app.manager.claim("w", ["noop"], limit=5)
        with app.backend.transaction() as s:
            for _ in range(4):
                app.manager.claim("w", ["noop"], limit=5)
            conn = cast(Any, s)._conn
            assert conn.execute("SELECT current_setting('plan_cache_mode')").fetchone() == ("auto",)
        with app.backend._connection() as conn:  # the pool's one connection: the claims'
            plans = conn.execute(
                "SELECT generic_plans, custom_plans FROM pg_prepared_statements"
                " WHERE statement LIKE '%%picked AS%%'"
            ).fetchall()
            setting = conn.execute(
                "SELECT current_setting('plan_cache_mode'), current_setting('jit')"
            ).fetchone()
    assert plans and plans[0][0] >= 3 and plans[0][1] == 0, plans
    # Its generic plan is estimated dear enough to be JIT-compiled (~90 ms a claim): never.
    assert setting == ("auto", "off")


def test_a_claim_with_no_queue_to_claim_from_reads_no_chunk(pg_url: str) -> None:
    # A worker whose kinds no active queue has (another fleet's work), or whose every queue is
    # behind a limited dependency (claimed apart, by claim_chunks_of), claims from no queue: its
    # lanes must not run, where they read the whole backlog in order for nothing (96-170 ms a
    # claim at 100,000 pending chunks, at every poll).
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(HISTORY.encode())
        text = to_psycopg(sql.queries("postgres")["claim_chunks"])
        with conn.transaction(force_rollback=True):
            rows = conn.execute(
                b"EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) " + text,
                {**CLAIM, "kinds": ["another fleet's kind"]},
            ).fetchall()
    plan = "\n".join(str(r[0]) for r in rows)
    for index in ("chunks_claim_fair", "chunks_runnable"):
        scans = [line for line in plan.splitlines() if f"Index Scan using {index} on" in line]
        assert scans and all("(never executed)" in line for line in scans), plan


# A rate-limited dependency's backlog ahead of the rest in the fair order, enqueued as the code
# before migration 0025 would (no claim group given: the insert's trigger gives it), and a plain
# queue's chunks behind it.
BEHIND = """
INSERT INTO dependencies (name, rate_units, rate_period_s, updated_at) VALUES ('api', 5, 1, 0);
INSERT INTO queues (id, name, source, kind, tenant, status, dependency, created_at, updated_at)
VALUES (gen_random_uuid(), 'limited', 'x://api', 'x', 'default', 'active', 'api', 0, 0),
       (gen_random_uuid(), 'plain', 'x://other', 'x', 'default', 'active', NULL, 0, 0);
INSERT INTO chunks (id, queue_id, seq, payload, run_after, created_at, updated_at, fair_key)
SELECT gen_random_uuid(), q.id, n, '{}', 0, n, n,
       CASE q.name WHEN 'limited' THEN n ELSE 100000 + n END
FROM queues q CROSS JOIN generate_series(1, 5000) AS n;
ANALYZE chunks;
"""


def _claimed(conn: psycopg.Connection[Any], name: str, params: dict[str, Any]) -> str:
    text = to_psycopg(sql.queries("postgres")[name])
    with conn.transaction(force_rollback=True):
        rows = conn.execute(b"EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) " + text, params)
        return "\n".join(str(r[0]) for r in rows.fetchall())


def test_each_claim_reads_past_no_other_claim_groups_backlog(pg_url: str) -> None:
    # Before migration 0025 a plain claim read the rate-limited dependency's 5,000 chunks ahead
    # of its own one by one (its filter removed them), and grew slower as it drained its own.
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(BEHIND.encode())
        groups = conn.execute(
            "SELECT q.name, c.claim_group, count(*) FROM chunks c JOIN queues q"
            " ON q.id = c.queue_id GROUP BY 1, 2 ORDER BY 1"
        ).fetchall()
        assert groups == [("limited", "api", 5000), ("plain", "", 5000)]
        plans = {
            "plain": _claimed(conn, "claim_chunks", {**CLAIM, "limit": 100}),
            "limited": _claimed(
                conn, "claim_chunks_of", {**CLAIM, "limit": 100, "dependency": "api"}
            ),
        }
    for which, plan in plans.items():
        assert "Update on chunks c (actual rows=100 " in plan, (which, plan)
        # Each read of the index (the lane's, and the plain claim's probes of its priority
        # levels) passes over no chunk: the lane's reads its 100 and stops.
        reads = plan.split("Index Scan using chunks_claim_fair")[1:]
        assert any(r.startswith(" on chunks c") and "actual rows=100 " in r for r in reads), plan
        for read in reads:
            assert "Rows Removed by Filter" not in read.split("->", 1)[0], (which, plan)


IDLE_QUEUES = """
INSERT INTO queues (id, tenant, name, source, kind, status, priority, policy, max_attempts,
                    created_at, updated_at)
SELECT gen_random_uuid(), 'idle', 'idle' || g, 'noop', 'noop', 'active', 0, 'default', 5, 0, 0
FROM generate_series(1, %(n)s::int) AS g
"""


@pytest.mark.parametrize("idle", [0, 600])
def test_a_claim_among_many_active_queues_takes_only_what_it_may(pg_url: str, idle: int) -> None:
    # Up to 500 queues it may claim from, a claim compares each chunk's queue with an array of
    # them; past that (600 more active queues of its kind, without chunks), it looks up each
    # chunk's queue by its key (claim_chunks' `few`). Both leave out the same queues.
    with App(pg_url) as app:
        for kind in ("noop", "other"):
            app.handler(kind)(lambda ctx: None)
        app.dependency("noop://gated")
        queues = {
            name: app.create_queue(source, ({"n": n} for n in range(size)), name=name).id
            for name, source, size in (
                ("ok", "noop://ok", 3),
                ("only", "noop://only", 2),
                ("excluded", "noop://excluded", 2),
                ("other kind", "other://o", 2),
                ("gated", "noop://gated/box", 2),
                ("paused", "noop://paused", 2),
            )
        }
        operate.set_flow(app.deps, "noop://gated", stopped=True, reason="outage")
        app.manager.pause_queue(queues["paused"], move_s=0)  # its chunks where they were
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(IDLE_QUEUES.encode(), {"n": idle})
            active = conn.execute(
                "SELECT COUNT(*) FROM queues WHERE status = 'active' AND kind = 'noop'"
            ).fetchone()
        assert active is not None and (active[0] > 500) == (idle > 0)
        m, name_of = app.manager, {v: k for k, v in queues.items()}

        def claimed(kinds: list[str], **options: Any) -> list[str]:
            _, chunks = m.claim("w", kinds, limit=50, **options)
            return sorted(name_of[c.queue_id] for c in chunks)

        assert claimed(["noop"], queue_id=queues["only"]) == ["only"] * 2
        assert claimed(["noop"], exclude=[queues["excluded"]]) == ["ok"] * 3
        assert claimed(["noop"]) == ["excluded"] * 2
        # Left: the gated dependency's, the paused queue's, the other kind's.
        assert claimed(["noop"]) == []
        assert claimed(["other"]) == ["other kind"] * 2
