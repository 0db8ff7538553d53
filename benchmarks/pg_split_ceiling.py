"""A design measured before it is built: a chunk's runnable and leased states kept apart from
its row, so that a claim and a finish update the chunk without touching an index (#18).

Today a claim and a finish are two non-HOT updates of a 25-column row: each writes a new entry
in every index of `chunks` whose predicate the new row meets (5 for a claim, 4 for a finish).
The design measured here ("split"):

- `ready`: one narrow row per runnable chunk (id, queue, tenant, seq, priority, fair_key,
  run_after, created_at) with the claim's two indexes (the fair order, the aged order). The
  claim is today's `claim_chunks`, read from the package, with its lanes reading `ready` instead
  of `chunks`; the rows it picks are deleted from `ready`.
- `leases`: one row per leased chunk (id, tenant, expiry, worker), indexed by expiry (the
  recovery's sweep), worker (a heartbeat's) and tenant (the in-flight quota the claim's `room`
  counts).
- `chunks` keeps its primary key and its (queue_id, seq) key only, at fillfactor 45 (or
  CHUNKSYNC_BENCH_SPLIT_FILLFACTOR): the claim's and the finish's updates change no indexed
  column, so they are HOT while the page has room.
- The attempt rows as today (`insert_attempts`).

"split_lean" is the same tables under a claim of one lane (the fair order at the top priority,
no aged lane, no tenant room): what a leaner claim would add on top of the split; "today_lean"
that claim on today's tables, for the claim's share alone. "narrow" is the split with the
states that change (status, attempts, lease, worker, times: 18 columns) in a `chunk_state` row
of their own, the cold row (payload, checkpoint, last error) read by the claim for its payload
and never updated by a successful chunk: a narrow row makes a low fillfactor cheap.

Not in any: what the rest of the code reads from `chunks` by status today (the SQL
interface's counts, the dashboard's, recovery's sweep) would read `ready` and `leases` or a
count kept beside them; the enqueue writes one more row per chunk; today's script also runs
`complete_queue_if_done` once a batch (under 1% of its time). The figures bound what the split
can give the claim-finish-log loop, the drain's path, not its cost elsewhere.

Each turn of a round: a fresh database of N no-op chunks (as bench_pg_drain's), today's SQL
(benchmarks/pg_ceiling.py) and each design, pgbench with 4 clients and batches of 512, on one
durable cluster; medians of the rounds, and each design's ratio to today's SQL the median of
its rounds' ratios (the machine drifts from one round to the next). Not part of `make bench`
(it measures a design, not a path of the code):
`.venv/bin/python -m benchmarks.pg_split_ceiling`. Env: CHUNKSYNC_BENCH_SPLIT_ROUNDS (default
5), CHUNKSYNC_BENCH_SPLIT_FILLFACTOR (default 45). Last line: split_ceiling_ratio (split over
today).
"""

from __future__ import annotations

import os
import statistics
import sys

import psycopg
from tests.servers.pgcluster import PgCluster, throwaway

from benchmarks.bench_pg_drain import N_CHUNKS, noop_queue
from benchmarks.pg_ceiling import BATCH, BATCH_JSON, CLAIM_VALUES, ceiling, run_batches, written

ROUNDS = max(1, int(os.environ.get("CHUNKSYNC_BENCH_SPLIT_ROUNDS", "5")))
FILLFACTOR = int(os.environ.get("CHUNKSYNC_BENCH_SPLIT_FILLFACTOR", "45"))
CLIENTS = 4

TABLES = """
CREATE TABLE split_chunks (LIKE chunks INCLUDING DEFAULTS) WITH (fillfactor = {fillfactor});
INSERT INTO split_chunks SELECT * FROM chunks;
ALTER TABLE split_chunks ADD PRIMARY KEY (id), ADD UNIQUE (queue_id, seq);
CREATE TABLE ready (
    id uuid PRIMARY KEY, queue_id uuid NOT NULL, tenant text NOT NULL, seq integer NOT NULL,
    status text NOT NULL DEFAULT 'pending', priority integer NOT NULL,
    fair_key double precision NOT NULL, run_after double precision NOT NULL,
    created_at double precision NOT NULL);
INSERT INTO ready SELECT id, queue_id, tenant, seq, 'pending', priority, fair_key, run_after,
    created_at FROM chunks;
CREATE INDEX ready_fair ON ready (priority DESC, fair_key) WHERE status = 'pending';
CREATE INDEX ready_aged ON ready (priority DESC, created_at, seq) WHERE status = 'pending';
CREATE TABLE leases (chunk_id uuid PRIMARY KEY, tenant text NOT NULL,
    expires_at double precision NOT NULL, worker_id text NOT NULL);
CREATE INDEX leases_expires ON leases (expires_at);
CREATE INDEX leases_worker ON leases (worker_id);
CREATE INDEX leases_tenant ON leases (tenant);
CREATE TABLE chunk_state (id uuid PRIMARY KEY, queue_id uuid NOT NULL, tenant text NOT NULL,
    status text NOT NULL, attempts integer NOT NULL, lease_token uuid,
    lease_expires_at double precision, worker_id text, run_after double precision NOT NULL,
    deferrals integer NOT NULL, stress_retries integer NOT NULL, last_category text,
    dead_reason text, items_processed integer NOT NULL, crash_count integer NOT NULL,
    finished_at double precision, fair_key double precision,
    updated_at double precision NOT NULL) WITH (fillfactor = {fillfactor});
INSERT INTO chunk_state SELECT id, queue_id, tenant, status, attempts, lease_token,
    lease_expires_at, worker_id, run_after, deferrals, stress_retries, last_category, dead_reason,
    items_processed, crash_count, finished_at, fair_key, updated_at FROM chunks;
"""

LEAN_PICK = (
    "WITH picked AS (SELECT c.id FROM {table} c WHERE c.status = 'pending'"
    " AND c.priority = (SELECT max(priority) FROM {table} WHERE status = 'pending')"
    " AND c.run_after <= date_part('epoch', now()) ORDER BY c.priority DESC, c.fair_key"
    f" LIMIT {BATCH} FOR UPDATE OF c SKIP LOCKED)"
)
DESIGNS = ("split", "split_lean", "narrow", "today_lean")
SPLIT_DESIGNS = ("split", "split_lean", "narrow")


def script(design: str) -> str:
    """The pgbench script of one worker batch under a design of DESIGNS."""
    from chunksync import sql

    q = sql.queries("postgres")
    head, update = written(q["claim_chunks"], CLAIM_VALUES).rsplit(" UPDATE chunks c ", 1)
    head = (
        head.replace("FROM chunks c", "FROM ready c")
        .replace("FROM chunks WHERE", "FROM ready WHERE")
        .replace(
            "FROM chunks p WHERE p.tenant = t.id AND p.status = 'processing'",
            "FROM leases p WHERE p.tenant = t.id",
        )
    )
    if "FROM chunks" in head:
        raise RuntimeError("claim_chunks reads chunks where this design does not expect it")
    picks = "WHERE c.id = ANY(ARRAY(SELECT id FROM picked))"
    if picks not in update:
        raise RuntimeError("claim_chunks no longer updates the picked ids")
    finish = written(q["finish_chunks"], {}, frozenset({"reports"}))
    attempts = written(q["insert_attempts"], {}, frozenset({"batch"}))
    if design == "today_lean":
        claim = f"{LEAN_PICK.format(table='chunks')}, claimed AS (UPDATE chunks c {update})"
        batch = [f"{claim} {BATCH_JSON}", "\\gset", "BEGIN;", finish + ";", attempts + ";"]
        return "\n".join([*batch, "COMMIT;", ""])
    update = update.replace(picks, "WHERE c.id = ANY(ARRAY(SELECT id FROM taken))")
    table = _updated(design)
    tail = f" claimed AS (UPDATE split_chunks c {update}) {BATCH_JSON}"
    if design == "narrow":  # the states apart, the cold row read for its payload
        # chunk_state holds none of the cold columns the claim returns: its own row instead.
        update = update.split(" RETURNING ", 1)[0] + " RETURNING c.*"
        tail = (
            f" claimed AS (UPDATE chunk_state c {update}), joined AS (SELECT claimed.*,"
            " k.payload FROM claimed JOIN split_chunks k USING (id))"
            f" {BATCH_JSON.replace(' FROM claimed', ' FROM joined')}"
        )
    claim = (
        f"{LEAN_PICK.format(table='ready') if design == 'split_lean' else head},"
        " taken AS (DELETE FROM ready WHERE id = ANY(ARRAY(SELECT id FROM picked))"
        " RETURNING id, tenant),"
        " leased AS (INSERT INTO leases SELECT id, tenant, date_part('epoch', now()) + 30,"
        " 'pgbench' FROM taken),"
        f"{tail}"
    )
    with_r, finish = finish.split(" UPDATE chunks c ", 1)
    if design == "narrow":  # the last error is the cold row's, written when there is one
        last_error = "last_error = COALESCE(r.message, c.last_error),"
        if last_error not in finish:
            raise RuntimeError("finish_chunks no longer writes the last error as expected")
        finish = finish.replace(last_error, "")
    finish = (
        f"{with_r}, finished AS (UPDATE {table} c {finish.rstrip().rstrip(';')})"
        " DELETE FROM leases WHERE chunk_id = ANY(ARRAY(SELECT id::uuid FROM finished))"
    )
    return "\n".join([claim, "\\gset", "BEGIN;", finish + ";", attempts + ";", "COMMIT;", ""])


def _updated(design: str) -> str:
    """The table a design's claim and finish update."""
    return "chunk_state" if design == "narrow" else "split_chunks"


def today_lean_ceiling(cluster: PgCluster, url: str) -> float:
    """Chunks per second through the one-lane claim on today's tables."""
    elapsed = run_batches(cluster, url, script("today_lean"), N_CHUNKS, CLIENTS)
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM chunks WHERE status = 'completed'").fetchone()
    if row != (N_CHUNKS,):
        raise RuntimeError(f"the one-lane claim left {row} chunks completed")
    return N_CHUNKS / elapsed


def split_ceiling(cluster: PgCluster, url: str, design: str) -> tuple[float, float]:
    """Chunks per second through the split design's SQL, and the share of HOT updates."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(TABLES.format(fillfactor=FILLFACTOR).encode())
    elapsed = run_batches(cluster, url, script(design), N_CHUNKS, CLIENTS)
    table = _updated(design)
    with psycopg.connect(url, autocommit=True) as conn:
        done = conn.execute(
            f"SELECT (SELECT count(*) FROM {table} WHERE status = 'completed'),"
            " (SELECT count(*) FROM attempts), (SELECT count(*) FROM leases),"
            " (SELECT count(*) FROM ready)"
        ).fetchone()
        hot = conn.execute(
            "SELECT n_tup_hot_upd::float8 / greatest(n_tup_upd, 1) FROM pg_stat_user_tables"
            f" WHERE relname = '{table}'"
        ).fetchone()
    if done != (N_CHUNKS, N_CHUNKS, 0, 0) or hot is None:
        raise RuntimeError(f"the split design left (completed, attempts, leases, ready) {done}")
    return N_CHUNKS / elapsed, float(hot[0])


def main() -> int:
    runs: dict[str, list[float]] = {"today": [], **{name: [] for name in DESIGNS}}
    hot: dict[str, list[float]] = {name: [] for name in SPLIT_DESIGNS}
    with throwaway(durable=True) as cluster:
        for turn in range(ROUNDS):
            url, queue_id = noop_queue(cluster, f"today{turn}")
            runs["today"].append(ceiling(cluster, url, queue_id, N_CHUNKS, CLIENTS))
            url, _ = noop_queue(cluster, f"today_lean{turn}")
            runs["today_lean"].append(today_lean_ceiling(cluster, url))
            for name in SPLIT_DESIGNS:
                url, _ = noop_queue(cluster, f"{name}{turn}")
                rate, share = split_ceiling(cluster, url, name)
                runs[name].append(rate)
                hot[name].append(share)
            print(" ".join(f"{k}={v[-1]:.0f}" for k, v in runs.items()), flush=True)
    rates = {name: statistics.median(values) for name, values in runs.items()}
    # Each design against today's SQL in the same round (the machine drifts between rounds).
    ratios = {
        name: statistics.median(d / t for d, t in zip(runs[name], runs["today"], strict=True))
        for name in DESIGNS
    }
    print(f"{N_CHUNKS} no-op chunks, {CLIENTS} clients, batches of {BATCH}, durable")
    print(f"split_fillfactor={FILLFACTOR}")
    for name in SPLIT_DESIGNS:
        print(f"{name}_hot_update_share={statistics.median(hot[name]):.2f}")
    print(f"pg_sql_ceiling_chunks_per_s={rates['today']:.0f}")
    for name in ("today_lean", "split_lean", "narrow", "split"):  # the split's ratio last
        print(f"{name}_ceiling_chunks_per_s={rates[name]:.0f}")
        print(f"{name}_ceiling_ratio={ratios[name]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
