"""The policy benchmark's simulated clock and the real worker make the same decisions.

A real Worker on a real SQLite file runs a handler that replays each chunk's script (raising the
same exceptions the simulation categorizes); the simulation replays the same scripts. Both are
compared decision by decision: (chunk, attempt, category, action, policy delay).

The worker runs with time_scale 1e-12: every wait rounds to nothing on the database clock (a
delay of at most 3600 s adds less than half a unit in the last place of the epoch), and the
simulation with time_scale 0 likewise, so with one slot both take the chunks in the fair order
(seq, and a chunk back to pending goes to the end of the line) and the shared retry budget sees
the same sequence of failures and successes. The
gate's probe interval shrinks alike (5e-12 s and 0 s): with stress on, both claim only the gate's
probes while it is shut (the worker through the dependency's shared row), so with one slot
neither holds a chunk, and the probes' deferrals are compared too.
"""

from __future__ import annotations

from typing import Any

import pytest

from chunksync.app import App
from chunksync.context import ChunkContext
from chunksync.faults import OK, ChunkScript, DependencyStream, FaultStream, make_exception
from chunksync.retry import DEFAULT_POLICY
from chunksync.simulate import PolicySpec, simulate

SOURCE = "script://api.example.com"
TIME_SCALE = 1e-12
ACTIONS = {
    "retried": "retry",
    "deferred": "defer",
    "dead": "dead",
    "completed": "completed",
    "held": "held",
}

SCRIPTS: dict[int, tuple[str, ...]] = {
    1: ("timeout", "timeout", "ok"),
    2: ("network", "temporary", "network", "ok"),
    3: ("not_found",),
    4: ("rate_limit:7", "ok"),
    5: ("unknown", "processing_error", "unknown", "unknown", "unknown", "ok"),
    6: ("auth", "auth", "ok"),
    7: ("network", "network", "network", "network", "ok"),
    8: ("ok",),
    9: ("data_conflict",),
    10: ("timeout", "unknown", "unknown", "network", "rate_limit:2", "ok"),
    11: ("temporary", "temporary", "ok"),
}


def stream() -> FaultStream:
    chunks = tuple(ChunkScript(seq, calls) for seq, calls in SCRIPTS.items())
    return FaultStream(None, (DependencyStream(SOURCE, 1, chunks),))


def run_worker(app: App, spec: PolicySpec) -> list[tuple[int, int, str, str, float]]:
    app.add_policy(spec.run_policy)  # the budget takes its limits from the queue's policy
    calls: dict[int, int] = {}

    @app.handler("script")
    def replay(ctx: ChunkContext) -> int:
        seq = int(ctx.payload["seq"])
        calls[seq] = calls.get(seq, 0) + 1
        kind = ChunkScript(seq, SCRIPTS[seq]).outcome(calls[seq])
        if kind != OK:
            raise make_exception(kind)
        return 1

    queue = app.create_queue(
        SOURCE,
        payloads=[{"seq": seq} for seq in SCRIPTS],
        max_attempts=spec.policy.max_attempts,
    )
    # batch=1: the worker claims quick chunks in growing batches; the simulation's chunks take a
    # second or so, for which the worker claims one at a time.
    worker = app.worker(
        concurrency=1,
        batch=1,
        time_scale=TIME_SCALE,
        rng=None,
        poll_s=0.01,
        handler_timeout_s=None,
    )
    worker.run_until_done([queue.id], timeout_s=60.0)
    chunks = app.manager.list_chunks(queue.id, limit=100)
    assert all(c.status.terminal for c in chunks), "the worker did not finish in time"
    rows: list[tuple[int, int, dict[str, Any]]] = []
    for chunk in chunks:
        seq = int(chunk.payload["seq"])
        rows += [(int(r["id"]), seq, r) for r in app.manager.list_attempts(chunk.id)]
    return [
        (
            seq,
            int(r["attempt"]),
            r["category"] or "",
            ACTIONS[r["outcome"]],
            float(r["retry_delay_s"] or 0.0),
        )
        for _, seq, r in sorted(rows, key=lambda row: row[0])
    ]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("stress_aware", [False, True], ids=["stress-off", "stress-on"])
def test_the_simulation_and_the_real_worker_decide_alike(
    sqlite_app: App, stress_aware: bool
) -> None:
    spec = PolicySpec("default", DEFAULT_POLICY, stress_aware=stress_aware)
    simulated = simulate(stream(), spec, rng=None, time_scale=0.0).decisions()
    real = run_worker(sqlite_app, spec)
    assert [d[:4] for d in real] == [d[:4] for d in simulated]
    assert [d[4] for d in real] == pytest.approx([d[4] for d in simulated])
    actions = {d[3] for d in simulated}
    assert {"retry", "dead", "completed"} <= actions
    assert ("defer" in actions) is stress_aware  # the stream does stress its dependency
    assert "held" not in actions  # one slot: a shut gate's chunks are never claimed but probes
    probes = sqlite_app.deps.get("script://api.example.com").probes
    assert (probes > 0) is stress_aware  # ... which the fleet's shared gate handed out
