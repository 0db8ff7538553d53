"""Which claim takes a dependency's chunks, for every kind of limit and every change between
them. "Limited" is written in several places that must agree, or a chunk waits where no claim
reads: Python's `Limits.any` and `Special.limited` (whether a worker claims through
`DependencyStore.claim`), each backend's plain claim (which passes over a limited or gated
dependency's queues) and `deps_special`, and on PostgreSQL `chunksync_claim_group()` (the
group an insert and a regroup give a chunk, which each claim reads alone)."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from chunksync.app import App
from chunksync.deps import operate
from chunksync.deps.model import LIMIT_KEYS
from chunksync.models import DEFAULT_PRIORITY
from chunksync.retry import StressConfig
from tests.rawsql import run

pytestmark = pytest.mark.timeout(120)

# Each kind of limit a dependency may have: the values an operator's change sets.
KINDS: dict[str, dict[str, Any]] = {
    "none": {},
    "connections": {"connections": 2},
    "rate": {"rate": "50/s"},
    "rate and burst": {"rate": "50/s", "burst": 5},
    "connections and rate": {"connections": 2, "rate": "50/s"},
}


def change(app: App, name: str, kind: str) -> bool:
    """Set `name`'s limits to `kind`'s (every other limit cleared); whether it is limited."""
    values = {key: KINDS[kind].get(key) for key in LIMIT_KEYS}
    _, after = operate.set_limits(app.deps, name, values, reason=f"now {kind}")
    return after.any


def groups_of(url: str, queue_id: str) -> set[str]:
    rows = run(url, "SELECT DISTINCT claim_group FROM chunks WHERE queue_id = %s", queue_id)
    return {str(r[0]) for r in rows}


def check(app: App, url: str, name: str, queue_id: str, limited: bool) -> None:
    """The queue's 4 pending chunks are claimed by the claim that `limited` calls for, and
    only by it; where chunks carry a claim group, each is in the one that claim reads."""
    _, special = app.deps.special()
    assert (name in special and special[name].limited) is limited
    if url.startswith("postgres"):
        group = name if limited else ""
        assert run(url, "SELECT chunksync_claim_group(%s)", name) == [(group,)]
        assert groups_of(url, queue_id) == {group}
    plain = app.manager.claim("w", ["job"], limit=10, queue_id=queue_id)[1]
    if not limited:
        assert len(plain) == 4
        return
    assert plain == []
    own = app.deps.claim(
        name, queue_id=queue_id, worker_id="w", kinds=["job"], limit=10, lease_s=30.0,
        config=StressConfig(),
    )  # fmt: skip
    assert len(own.chunks) == 4


def aged_lane(app: App) -> None:
    """Every claim below reads the aged lane too, which reads a level's chunks of every group
    (the fair lane reads group '' alone): chunks of no limited dependency wait at a priority
    above the default and at the default, and any chunk is old enough."""
    app.handler("job")(lambda ctx: None)
    app.manager.aging_s = 0.0
    app.create_queue("job://top.example.com/pages", [{"n": 0}], priority=DEFAULT_PRIORITY + 1)
    app.create_queue("job://level.example.com/pages", [{"n": 0}])


def test_each_change_of_limits_leaves_every_chunk_to_the_claim_that_reads_it(
    app: App, db_url: str
) -> None:
    aged_lane(app)
    for n, (before, after) in enumerate(itertools.product(KINDS, KINDS)):
        name = f"job://api-{n}.example.com"
        queue = app.create_queue(f"{name}/pages", [{"n": i} for i in range(3)])
        was = change(app, name, before) if KINDS[before] else False
        assert app.deps.get(name).limits.any is was
        limited = change(app, name, after)
        app.manager.add_chunks(queue.id, [{"n": 3}])  # one enqueued after the change
        check(app, db_url, name, queue.id, limited)


def test_a_gated_dependency_is_claimed_by_its_own_claim_alone(app: App, db_url: str) -> None:
    # Closed by an operator, a dependency without limits is treated apart too (its chunks stay
    # in group '', which its own claim reads as a probe once it opens again).
    aged_lane(app)
    name = "job://closed.example.com"
    queue = app.create_queue(f"{name}/pages", [{"n": i} for i in range(4)])
    operate.set_flow(app.deps, name, stopped=True, reason="outage")
    _, special = app.deps.special()
    assert special[name].limited and not special[name].limits.any
    assert app.manager.claim("w", ["job"], limit=10, queue_id=queue.id)[1] == []
    if db_url.startswith("postgres"):
        assert groups_of(db_url, queue.id) == {""}
    operate.set_flow(app.deps, name, stopped=False, reason="back")
    check(app, db_url, name, queue.id, limited=False)
