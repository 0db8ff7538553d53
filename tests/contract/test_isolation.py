"""Handler isolation: a kind's handler in a process of its own, killed at its timeout, so that
nothing of it runs on after its attempt (a thread could only be abandoned)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from chunksync.app import App
from chunksync.context import ChunkContext
from chunksync.models import ChunkStatus

FAST = {"poll_s": 0.05, "time_scale": 0.001, "lease_s": 5.0}


def test_an_isolated_handler_is_killed_at_its_timeout(app: App, tmp_path: Path) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()

    @app.handler("stubborn")
    def stubborn(ctx: ChunkContext) -> int:
        n = ctx.payload["n"]
        (marks / f"{n}-{os.getpid()}-start").touch()
        if n == 0 and len(list(marks.glob("0-*-start"))) == 1:
            time.sleep(30)  # will not stop on its own: killed
            (marks / "0-late").touch()  # the side effect that must never happen
        return 1

    queue = app.create_queue("stubborn://x", [{"n": n} for n in range(4)])
    worker = app.worker(concurrency=2, isolate={"stubborn": 1.0}, **FAST)
    worker.run_until_done([queue.id], timeout_s=120)
    chunks = app.manager.list_chunks(queue.id, limit=10)
    assert {c.status for c in chunks} == {ChunkStatus.COMPLETED}
    first = min(chunks, key=lambda c: c.seq)
    outcomes = [a["outcome"] for a in app.manager.list_attempts(first.id)]
    assert outcomes == ["retried", "completed"]
    assert "isolation timeout" in (app.manager.list_attempts(first.id)[0]["message"] or "")
    pids = {p.name.split("-")[1] for p in marks.glob("*-start")}
    assert str(os.getpid()) not in pids  # every call ran in a child
    time.sleep(1.5)  # past when the killed child would have woken
    assert not (marks / "0-late").exists()


def test_an_isolated_handler_s_failure_comes_back(app: App) -> None:
    @app.handler("fails")
    def fails(ctx: ChunkContext) -> int:
        raise PermissionError("403 forbidden")

    queue = app.create_queue("fails://x", [{"n": 1}], max_attempts=1)
    app.worker(isolate={"fails": 5.0}, **FAST).run_until_done([queue.id], timeout_s=60)
    [chunk] = app.manager.list_chunks(queue.id)
    assert chunk.status is ChunkStatus.DEAD and chunk.last_category == "permission"
