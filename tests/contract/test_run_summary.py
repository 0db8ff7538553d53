"""`run_until_done()` returns what the run came to, and tells a listener how far it is."""

from __future__ import annotations

from chunksync.app import App
from chunksync.context import ChunkContext
from chunksync.models import ChunkStatus

FAST = {"poll_s": 0.05, "time_scale": 0.001, "lease_s": 5.0}


def test_run_until_done_returns_its_summary(app: App) -> None:
    @app.handler("sum")
    def handle(ctx: ChunkContext) -> int:
        if ctx.payload["n"] == 3:
            raise PermissionError("forbidden")
        return 1

    q = app.create_queue("sum://x", [{"n": n} for n in range(20)], name="twenty")
    heard: list[tuple[int, int]] = []
    worker = app.worker(concurrency=2, **FAST)
    summary = worker.run_until_done(
        [q.id], timeout_s=60, on_progress=lambda done, total: heard.append((done, total))
    )
    assert summary.finished and summary.worker_id == worker.id
    assert summary.total(ChunkStatus.COMPLETED) == 19 and summary.total(ChunkStatus.DEAD) == 1
    assert summary.chunks_run == worker.processed >= 20
    assert heard and heard[-1] == (20, 20) and all(t == 20 for _, t in heard)
    shown = summary.as_dict()
    assert shown["totals"]["completed"] == 19 and shown["queues"][0]["name"] == "twenty"
    assert "19 completed, 1 dead" in summary.text() and "queue twenty: 1 dead" in summary.text()


def test_a_run_that_times_out_says_so(app: App) -> None:
    app.handler("other")(lambda ctx: 1)
    q = app.create_queue("other://x", [{}])
    summary = app.worker(queue_id="elsewhere", **FAST).run_until_done([q.id], timeout_s=0.3)
    assert not summary.finished and summary.total(ChunkStatus.PENDING) == 1
    assert summary.text().startswith("stopped before the queues finished")
