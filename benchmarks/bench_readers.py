"""The dashboard's and the operator's reads of chunks and queues on a fleet's history, on SQLite
and on PostgreSQL: a tenant's first page while another tenant's history is most of the chunks.

The history: one tenant (`big`) with one queue of BIG_CHUNKS chunks, and SMALL_TENANTS tenants
with two queues of SMALL_CHUNKS each; nine chunks in ten completed, one in 97 dead, the rest
pending (set by hand after the enqueue, as a long-lived store holds them). PostgreSQL is
analyzed, as autovacuum would have it; its tables are owned by a plain role, so row security
applies to every read. Each figure is the median of bench_health's RUNS calls after a warm one,
through chunksync's own calls (the manager's, `chunksync.search`'s):

- `get_queue`: the big queue with its totals (the queue page);
- `queue_page`: the first 50 queues with their totals (the queue list);
- `tenant_queues`: a small tenant's queues with their totals;
- `tenant_chunks`: a small tenant's first 100 chunks (`list_chunks` of one tenant);
- `search_page`, `search_count`: the dashboard's chunk search for a small tenant, its page and
  its count; `search_count_all`, `search_count_completed`: the count of every chunk, and of the
  completed ones, across tenants (the search with no filter);
- `operator_dead`, `operator_processing`: `chunksync chunks --status` across every queue, the
  first 100 dead chunks (one in 97) and the chunks in flight (none, the worst case: no page
  fills before the end).

Prints `readers_<read>_ms_<backend>=` for each, and last `readers_worst_ms=`, the slowest read on
either backend. CHUNKSYNC_BENCH_READER_CHUNKS sets BIG_CHUNKS (default 300,000).
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.bench_health import plain_owner_database, timed
from chunksync.app import App
from chunksync.models import ChunkStatus
from chunksync.search import ChunkQuery, count, search

BIG_CHUNKS = int(os.environ.get("CHUNKSYNC_BENCH_READER_CHUNKS", "300000"))
SMALL_TENANTS = 50
SMALL_CHUNKS = 500
STATUSES = (
    "UPDATE chunks SET status = 'completed', finished_at = created_at WHERE seq % 10 <> 0",
    "UPDATE chunks SET status = 'dead', finished_at = created_at, dead_reason = 'bench'"
    " WHERE seq % 97 = 0",
)


def populate(app: App) -> tuple[str, str]:
    """The history; returns the big queue's id and one small tenant."""
    app.handler("noop")(lambda ctx: None)
    big = app.create_queue("noop://big", ({"n": n} for n in range(BIG_CHUNKS)), tenant="big")
    for t in range(SMALL_TENANTS):
        for q in range(2):
            payloads = ({"n": n} for n in range(SMALL_CHUNKS))
            app.create_queue(f"noop://t{t}/{q}", payloads, tenant=f"t{t:03d}")
    return big.id, f"t{SMALL_TENANTS // 2:03d}"


def reads(app: App, big: str, tenant: str) -> dict[str, Callable[[], object]]:
    manager, backend = app.manager, app.backend
    return {
        "get_queue": lambda: manager.get_queue(big),
        "queue_page": lambda: manager.queue_page(50),
        "tenant_queues": lambda: manager.list_queues(tenant=tenant),
        "tenant_chunks": lambda: manager.list_chunks(tenant=tenant, limit=100),
        "search_page": lambda: search(backend, ChunkQuery(tenant=tenant)),
        "search_count": lambda: count(backend, ChunkQuery(tenant=tenant)),
        "search_count_all": lambda: count(backend, ChunkQuery()),
        "search_count_completed": lambda: count(backend, ChunkQuery(status=ChunkStatus.COMPLETED)),
        "operator_dead": lambda: manager.list_chunks(status=ChunkStatus.DEAD, limit=100),
        "operator_processing": lambda: manager.list_chunks(
            status=ChunkStatus.PROCESSING, limit=100
        ),
    }


def measure(url: str, big: str, tenant: str, backend_name: str) -> dict[str, float]:
    with App(url) as app:
        results = {name: timed(fn) for name, fn in reads(app, big, tenant).items()}
    for name, ms in results.items():
        print(f"readers_{name}_ms_{backend_name}={ms:.2f}", flush=True)
    return results


def sqlite_case(folder: Path) -> dict[str, float]:
    import sqlite3

    path = folder / "readers.db"
    started = time.monotonic()
    with App(f"sqlite:///{path}") as app:
        big, tenant = populate(app)
    with sqlite3.connect(path) as conn:
        for statement in STATUSES:
            conn.execute(statement)
    print(f"sqlite: {chunks()} chunks in {time.monotonic() - started:.0f} s", flush=True)
    return measure(f"sqlite:///{path}", big, tenant, "sqlite")


def postgres_case() -> dict[str, float] | None:
    import psycopg

    with plain_owner_database("bench_readers") as urls:
        if urls is None:
            return None
        url, superuser = urls
        started = time.monotonic()
        with App(url) as app:
            big, tenant = populate(app)
        with psycopg.connect(superuser, autocommit=True) as conn:
            for statement in (*STATUSES, "VACUUM ANALYZE"):
                conn.execute(statement.encode())
        print(f"postgres: {chunks()} chunks in {time.monotonic() - started:.0f} s", flush=True)
        return measure(url, big, tenant, "postgres")


def chunks() -> int:
    return BIG_CHUNKS + SMALL_TENANTS * 2 * SMALL_CHUNKS


def main() -> None:
    found: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as folder:
        found.append(sqlite_case(Path(folder)))
    pg = postgres_case()
    if pg is not None:
        found.append(pg)
    print(f"readers_worst_ms={max(max(r.values()) for r in found):.2f}")


if __name__ == "__main__":
    main()
