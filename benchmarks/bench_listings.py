"""The operator's listings and the Prometheus scrape at a fleet's size, on PostgreSQL: 5,000
tenants' ten folders, 50,000 queues of four chunks (one completed, three pending; about one in
a hundred of the second chunks dead), made in SQL and analyzed.

Each figure is the median of RUNS turns of the real CLI in a subprocess (its start included:
~0.3 s of imports), or of the scrape in this process:

- `status`: the first 50 queues with their totals, and how many more there are;
- `status_json`: every queue as JSON;
- `health`: the system's state and the first 50 queues' health;
- `health_json`: every queue's health as JSON (25 s before session 34: a statement a queue);
- `scale_advice`: every active queue's advice computed, the 50 asking for a change first shown;
- `metrics`: one scrape of /metrics (`chunksync.observe.metrics.render`), and its series.

Before session 33 (2026-12-07) every listing printed every queue: `status` 45 s, `status --json`
52 s, `health` 132 s, `scale-advice` 29 s, the scrape 6.2 s and 100,206 series.

Prints `listing_<name>_s=` for each, `metrics_series=`, and last `listing_worst_s=`.
CHUNKSYNC_BENCH_LISTING_TENANTS sets the tenants (default 5,000; ten queues each).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import psycopg
from tests.servers.pgcluster import PgCluster

from chunksync.app import App
from chunksync.observe import metrics

TENANTS = int(os.environ.get("CHUNKSYNC_BENCH_LISTING_TENANTS", "5000"))
QUEUES_A_TENANT, CHUNKS_A_QUEUE = 10, 4
RUNS = 3
ROOT = Path(__file__).resolve().parent.parent
QUEUES = b"""
INSERT INTO queues (id, tenant, name, source, kind, status, priority, policy, max_attempts,
                    created_at, updated_at)
SELECT gen_random_uuid(), 't' || (g %% %(tenants)s), 'q' || g, 'noop', 'noop', 'active', 0,
       'default', 5, date_part('epoch', now()) - 3600, date_part('epoch', now()) - 3600
FROM generate_series(1, %(queues)s::int) AS g
"""
CHUNKS = b"""
INSERT INTO chunks (id, queue_id, tenant, seq, payload, status, priority, attempts,
                    max_attempts, run_after, created_at, updated_at, finished_at, dead_reason)
SELECT gen_random_uuid(), q.id, q.tenant, s, '{}'::jsonb, v.status, 0,
       CASE WHEN v.status = 'pending' THEN 0 ELSE 1 END, 5, t.now_s - 600, t.now_s - 3600,
       t.now_s - 60, CASE WHEN v.status = 'pending' THEN NULL ELSE t.now_s - 60 END,
       CASE WHEN v.status = 'dead' THEN 'bench' END
FROM queues q, generate_series(1, %(chunks)s::int) AS s,
     (SELECT date_part('epoch', now()) AS now_s) AS t,
     LATERAL (SELECT CASE WHEN s = 1 THEN 'completed'
                          WHEN s = 2 AND random() < 0.01 THEN 'dead'
                          ELSE 'pending' END AS status) AS v
"""


def populate(url: str) -> None:
    with App(url) as app:  # the schema
        app.handler("noop")(lambda ctx: None)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(QUEUES, {"tenants": TENANTS, "queues": TENANTS * QUEUES_A_TENANT})
        conn.execute(CHUNKS, {"chunks": CHUNKS_A_QUEUE})
        conn.execute(b"VACUUM ANALYZE")


def cli_seconds(url: str, *args: str) -> float:
    """The median wall time of the real CLI's command, in a subprocess."""
    command = [sys.executable, "-m", "chunksync", "--db", url, *args]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "COLUMNS": "160"}
    times = []
    for _ in range(RUNS):
        started = time.perf_counter()
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        times.append(time.perf_counter() - started)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(args)} failed: {done.stderr[-400:]}")
    return statistics.median(times)


def scrape(url: str) -> tuple[float, int]:
    """The median seconds of a scrape, and its number of series."""
    with App(url) as app:
        times, body = [], b""
        for _ in range(RUNS):
            started = time.perf_counter()
            body, _ = metrics.render(app.manager)
            times.append(time.perf_counter() - started)
    series = [ln for ln in body.decode().splitlines() if ln and not ln.startswith("#")]
    return statistics.median(times), len(series)


def main() -> int:
    cluster = PgCluster(durable=False).start()
    try:
        url = cluster.create_database("listings")
        started = time.perf_counter()
        populate(url)
        queues = TENANTS * QUEUES_A_TENANT
        print(
            f"{queues:,} queues of {CHUNKS_A_QUEUE} chunks in {time.perf_counter() - started:.1f} s"
        )
        figures = {
            "status": cli_seconds(url, "status"),
            "status_json": cli_seconds(url, "status", "--json"),
            "health": cli_seconds(url, "health"),
            "health_json": cli_seconds(url, "health", "--json"),
            "scale_advice": cli_seconds(url, "scale-advice"),
        }
        figures["metrics"], series = scrape(url)
    finally:
        cluster.stop()
    for name, seconds in figures.items():
        print(f"listing_{name}_s={seconds:.2f}")
    print(f"metrics_series={series}")
    print(f"listing_worst_s={max(figures.values()):.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
