"""The ceiling of chunksync's own SQL on PostgreSQL: the claim, finish and attempt-logging
statements a worker sends, driven by pgbench (no Python in the loop).

Each pgbench transaction is one worker batch, as `Manager.claim` and `Manager.finish_many` send
it: the claim (`claim_chunks`, one statement in autocommit, BATCH chunks), then one transaction
with `finish_chunks` (every claimed chunk completed, fenced by its lease token) and
`insert_attempts` (one attempt row per chunk, `log_chunk_health_metrics`' INSERT), then
`complete_queue_if_done`. The statements are the named queries themselves, read from the
package, with the worker's parameters written in; only the batch's reports and attempts, built
from the claim's rows in SQL, travel as pgbench variables. Same database settings as the drain
(a fresh database each run, durable cluster), CLIENTS connections like the drain's processes.
What a worker does besides (its Python, the heartbeat, the wake-ups) is not in it: that is the
distance this ceiling measures.
"""

from __future__ import annotations

import math
import re
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg
from tests.servers.pgcluster import PG_BIN, PgCluster

BATCH = 512  # the worker's largest adaptive claim batch
SETTLE_WAIT_SECONDS = 60.0  # the longest wait for autovacuum workers to finish before a run


class Raw(str):
    """SQL written in as it is (not a quoted literal)."""


def _literal(value: object) -> str:
    if isinstance(value, Raw):
        return str(value)
    if value is None:
        return "NULL"
    if isinstance(value, int | float):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


def written(text: str, values: dict[str, object], keep: frozenset[str] = frozenset()) -> str:
    """A named query with its parameters written in as literals (those in `keep` stay pgbench
    variables), on one line: pgbench reads a statement per line unless it ends in a `\\`."""
    from chunksync import sql

    def one(m: re.Match[str]) -> str:
        name = m.group(1)
        return f":{name}" if name in keep else _literal(values[name])

    lines = [ln.split("--")[0].rstrip() for ln in sql.NAMED_PARAM.sub(one, text).splitlines()]
    return " ".join(ln.strip() for ln in lines if ln.strip())


# The worker's claim parameters, written into the claim (a lease token per claim, as a worker's).
CLAIM_VALUES: dict[str, object] = {
    "kinds": "{noop}",
    "exclude": "{}",
    "queue_id": None,
    "aging_s": 300.0,
    "limit": BATCH,
    "token": Raw("gen_random_uuid()"),
    "lease_s": 30.0,
    "worker_id": "pgbench",
}
# The claimed rows (the CTE `claimed`) as the batch's JSON, in the shapes
# results.finish_row and results.attempt_row build.
BATCH_JSON = (
    "SELECT COALESCE(jsonb_agg(jsonb_build_array(id, lease_token, 'completed', 0, 0, 0, 0,"
    " NULL, NULL, NULL, 1, NULL)), '[]') AS reports,"
    " COALESCE(jsonb_agg(jsonb_build_array(id, queue_id, tenant, worker_id, attempts,"
    " 0.0001, 'completed', 1, 1, 10000.0, 1.0, NULL, NULL, NULL, NULL, 50000000)), '[]')"
    " AS batch FROM claimed"
)


def script(queue_id: str) -> str:
    """The pgbench script of one worker batch (see the module's docstring)."""
    from chunksync import sql

    q = sql.queries("postgres")
    # The claim's UPDATE ... RETURNING becomes the last CTE, and its rows the batch's JSON.
    head, update = written(q["claim_chunks"], CLAIM_VALUES).rsplit(" UPDATE chunks c ", 1)
    batch = f"{head}, claimed AS (UPDATE chunks c {update}) {BATCH_JSON}"
    keep = frozenset({"reports", "batch"})
    finish = written(q["finish_chunks"], {}, keep)
    attempts = written(q["insert_attempts"], {}, keep)
    complete = written(q["complete_queue_if_done"], {"id": queue_id})
    return "\n".join(
        [batch, "\\gset", "BEGIN;", finish + ";", attempts + ";", "COMMIT;", complete + ";", ""]
    )


def ceiling(cluster: PgCluster, url: str, queue_id: str, chunks: int, clients: int) -> float:
    """Chunks per second through the worker's SQL alone, until `chunks` are completed."""
    elapsed = run_batches(cluster, url, script(queue_id), chunks, clients)
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM chunks WHERE status = 'completed'").fetchone()
        attempts = conn.execute("SELECT count(*) FROM attempts").fetchone()
    if not row or row[0] != chunks or not attempts or attempts[0] != chunks:
        raise RuntimeError(f"pgbench left {row} of {chunks} chunks completed, {attempts} attempts")
    return chunks / elapsed


def settle(cluster: PgCluster, url: str) -> None:
    """Before a timed run, the same quiet server for every contestant: the databases of earlier
    runs dropped (their autovacuum and the checkpoint their writes brought on ran into the next
    run's window, whichever contestant that was), this run's database vacuumed and analyzed
    (as autovacuum would soon after its queue was loaded, only now rather than mid-run), a
    checkpoint, and no autovacuum worker left running."""
    dbname = url.rsplit("/", 1)[1]
    with psycopg.connect(cluster.url(), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT datname FROM pg_database WHERE NOT datistemplate"
            " AND datname NOT IN ('postgres', %s)",
            [dbname],
        ).fetchall()
    for (name,) in rows:
        cluster.drop_database(str(name))
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE)")
        conn.execute("CHECKPOINT")
        deadline = time.monotonic() + SETTLE_WAIT_SECONDS
        busy = "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'autovacuum worker'"
        while (row := conn.execute(busy).fetchone()) and row[0] and time.monotonic() < deadline:
            time.sleep(0.2)


def run_batches(cluster: PgCluster, url: str, text: str, chunks: int, clients: int) -> float:
    """Seconds pgbench takes to run a batch script (BATCH chunks a turn) until `chunks` are
    done: `clients` connections, prepared statements, a couple of turns more than needed (the
    last ones find nothing left)."""
    per_client = math.ceil(chunks / BATCH / clients) + 2
    settle(cluster, url)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "batch.sql"
        path.write_text(text, encoding="utf-8")
        dbname = url.rsplit("/", 1)[1]
        command = [
            str(PG_BIN / "pgbench"),
            *("-h", "127.0.0.1", "-p", str(cluster.port), "-U", "postgres"),
            *("-n", "-M", "prepared", "-c", str(clients), "-j", str(clients)),
            *("-t", str(per_client), "-f", str(path), dbname),
        ]
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"pgbench failed: {done.stderr.strip()[-500:]}")
    return elapsed
