"""The ceiling of chunksync's own SQL on SQLite: the statements a worker sends for a batch, in
a tight loop on one thread, with no worker around them.

Each turn is one worker batch, as `Manager.claim` and `Manager.finish_many` send it: the claim
(`claim_chunks`, BATCH chunks, one write statement), then one transaction with `finish_chunks`
(every claimed chunk completed, fenced by its lease token) and `insert_attempts` (one attempt
row per chunk), then `complete_queue_if_done`. Through the backend's own connection and
settings (WAL, synchronous=NORMAL, its SQL functions), its named queries, parameters in the
shapes the manager builds, the batch's JSON made from the claim's rows with nothing else. What a
worker does besides (its objects per chunk, the seven steps, the handler call, its threads, the
heartbeat) is the distance this ceiling measures.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

from chunksync.app import App
from chunksync.context import ChunkContext
from chunksync.models import Queue

BATCH = 512  # the worker's largest adaptive claim batch


def noop(ctx: ChunkContext) -> int:
    return 1


def noop_queue(app: App, chunks: int) -> Queue:
    """The queue of `chunks` no-op chunks the SQLite benchmarks drain (and this ceiling)."""
    app.handler("noop")(noop)
    return app.create_queue("noop://bench", ({"n": n} for n in range(chunks)))


def ceiling(folder: Path, chunks: int) -> float:
    """Chunks per second through the worker's SQL alone, on a fresh database."""
    url = f"sqlite:///{folder / f'ceiling-{uuid.uuid4().hex[:8]}.db'}"
    with App(url) as app:
        queue = noop_queue(app, chunks)
        backend = app.backend
        claim = {
            "lease_s": 30.0,
            "worker_id": "ceiling",
            "limit": BATCH,
            "kinds": backend.list_param(["noop"]),
            "exclude": backend.list_param([]),
            "queue_id": None,
            "aging_s": 300.0,
        }
        started = time.perf_counter()
        while rows := backend.fetch_all(
            "claim_chunks", {**claim, "token": str(uuid.uuid4())}, write=True
        ):
            token = rows[0]["lease_token"]
            reports = [
                [r["id"], token, "completed", 0, 0, 0, 0, None, None, None, 1, None] for r in rows
            ]
            attempts = [
                [r["id"], r["queue_id"], r["tenant"], "ceiling", r["attempts"], 0.0001,
                 "completed", 1, 1, 10000.0, 1.0, None, None, None, None, 50_000_000]
                for r in rows
            ]  # fmt: skip
            with backend.transaction() as s:
                s.fetch_all("finish_chunks", {"reports": json.dumps(reports)})
                s.execute_rows("insert_attempts", attempts)
            backend.execute("complete_queue_if_done", {"id": queue.id})
        elapsed = time.perf_counter() - started
        done = app.manager.get_queue(queue.id)
        assert done.totals.get("completed") == chunks, done.totals  # type: ignore[call-overload]
        logged = backend.fetch_one("health_queue_timed_count", {"queue_id": queue.id})
        assert logged is not None and logged["n"] == chunks  # one attempt row per chunk
    return chunks / elapsed
