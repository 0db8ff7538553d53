"""Bad data never throttles a healthy dependency: only the dependency's own faults (timeout,
network, temporary, rate_limit) charge its retry budget and shut its gate."""

from __future__ import annotations

from chunksync.app import App
from chunksync.context import ChunkContext
from chunksync.models import ChunkStatus, Outcome, QueueStatus


def test_malformed_records_go_dead_and_nothing_else_waits(app: App) -> None:
    # The case found by a user: 40 chunks, 3 always raise ValueError (malformed records). They
    # used to spend the dependency's retry budget, shut its gate and hold healthy chunks.
    bad = {7, 19, 33}

    @app.handler("records")
    def parse(ctx: ChunkContext) -> int:
        if ctx.payload["n"] in bad:
            raise ValueError(f"record {ctx.payload['n']} is malformed")
        return 1

    q = app.create_queue("records://api.example.com", [{"n": n} for n in range(40)])
    # time_scale 0.01: the default policy's delays (1, 2, 4, 8 s) take 0.15 s here in all.
    app.worker(concurrency=2, poll_s=0.05, time_scale=0.01).run_until_done([q.id], timeout_s=60)
    assert app.manager.get_queue(q.id).status is QueueStatus.FAILED
    chunks = app.manager.list_chunks(q.id, limit=100)
    dead = {c.payload["n"]: c for c in chunks if c.status is ChunkStatus.DEAD}
    assert set(dead) == bad
    for c in dead.values():
        assert c.attempts == c.max_attempts
        assert c.dead_reason == f"processing_error: out of retries after {c.max_attempts}"
    assert sum(c.status is ChunkStatus.COMPLETED for c in chunks) == 37
    budget = app.budgets.get("records://api.example.com")
    assert not budget.stressed and budget.tokens == budget.config.capacity
    outcomes = {a["outcome"] for c in chunks for a in app.manager.list_attempts(c.id)}
    assert Outcome.HELD not in outcomes and Outcome.DEFERRED not in outcomes
