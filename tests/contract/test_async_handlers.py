"""`async def` handlers through a real worker on every backend: they run (not merely called),
fail and time out as plain handlers do, and are cancelled when the worker gives up on them."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from typing import Any

from chunksync.app import App
from chunksync.context import ChunkContext
from chunksync.models import ChunkStatus, QueueStatus

FAST = {"poll_s": 0.05, "time_scale": 0.001, "lease_s": 5.0}


def wait_until(predicate: Any, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.01)


def test_async_handlers_run_each_chunk_once(app: App) -> None:
    done: Counter[int] = Counter()
    loops: set[int] = set()
    lock = threading.Lock()

    @app.handler("aio")
    async def fetch(ctx: ChunkContext) -> int:
        await asyncio.sleep(0.001)  # a real suspension: the loop must drive it
        with lock:
            done[ctx.payload["n"]] += 1
            loops.add(id(asyncio.get_running_loop()))
        return 3

    q = app.create_queue("aio://x", [{"n": n} for n in range(60)])
    app.worker(concurrency=3, **FAST).run_until_done([q.id], timeout_s=60)
    assert app.manager.get_queue(q.id).status is QueueStatus.COMPLETED
    assert sorted(done) == list(range(60)) and set(done.values()) == {1}
    assert {c.items_processed for c in app.manager.list_chunks(q.id)} == {3}
    assert 1 <= len(loops) <= 3  # one loop per slot thread, not one per chunk


def test_an_async_failure_follows_the_policy(app: App) -> None:
    @app.handler("aiofail")
    async def flaky(ctx: ChunkContext) -> int:
        await asyncio.sleep(0)
        if ctx.attempt == 1:
            raise ConnectionRefusedError("connection refused")
        ctx.save_checkpoint({"at": ctx.attempt})  # the context's calls work from a coroutine
        ctx.heartbeat()
        return 1

    q = app.create_queue("aiofail://x", [{}])
    app.worker(**FAST).run_until_done([q.id], timeout_s=30)
    [chunk] = app.manager.list_chunks(q.id)
    rows = app.manager.list_attempts(chunk.id)
    assert chunk.status is ChunkStatus.COMPLETED and chunk.checkpoint == {"at": 2}
    assert (rows[0]["outcome"], rows[0]["category"]) == ("retried", "network")


def test_an_async_handler_past_its_timeout_is_cancelled(app: App) -> None:
    cancelled = threading.Event()

    @app.handler("aioslow")
    async def slow(ctx: ChunkContext) -> int:
        if ctx.attempt == 1:
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                cancelled.set()
                raise
        return 1

    q = app.create_queue("aioslow://x", [{}])
    app.worker(handler_timeout_s=0.2, **FAST).run_until_done([q.id], timeout_s=30)
    [chunk] = app.manager.list_chunks(q.id)
    rows = app.manager.list_attempts(chunk.id)
    assert chunk.status is ChunkStatus.COMPLETED
    assert (rows[0]["outcome"], rows[0]["category"]) == ("retried", "timeout")
    assert "past its timeout" in rows[0]["message"]
    assert cancelled.wait(10), "the timed-out coroutine was left running"


def test_a_stopping_worker_cancels_a_running_async_handler(app: App) -> None:
    started, cancelled = threading.Event(), threading.Event()

    @app.handler("aiolong")
    async def long(ctx: ChunkContext) -> int:
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return 1

    q = app.create_queue("aiolong://x", [{}])
    worker = app.worker(**FAST)
    worker.start()
    try:
        assert started.wait(20)
    finally:
        worker.stop(grace_s=0.2)
    assert cancelled.wait(10)
    [chunk] = app.manager.list_chunks(q.id)
    assert chunk.status is ChunkStatus.PENDING and chunk.attempts == 0  # attempt given back
