"""Chunks moved to the claim group their queue now calls for (PostgreSQL, migrations 0025 and
0027): a dependency's, after a change of its limits (its name when it is limited, else ''), and
a queue's, after a pause (its paused group) or a resume. Each claim reads its own group alone,
so a chunk left in another group would wait where no claim reads it.

A change of limits that calls for another group does two things in its own transaction
(`DependencyStore.regroup`): it locks the rows of the dependency's queues, so that every insert
into them has either committed (and its chunks are there to move) or waits and gives its chunks
the new group itself (0025's trigger); and it leaves a mark in `claim_regroups`. After that
transaction, `move` walks the dependency's queues in id order and each queue's chunks in seq
order, REGROUP_BATCH at a time, each batch a transaction of its own. In one statement, a
million chunks took 32 s, and held the queues' rows, so every enqueue to them waited as long,
and every worker finishing one of its chunks too. A chunk waits until its batch comes: the claim
that reads its old group is not the one the limits now call for. Neither claim takes it meanwhile,
so no chunk is taken twice.

The batches of one dependency take turns (a transaction's advisory lock): a batch that began
before a later change of the limits ends before the later change's mover moves anything. The
later change's token replaces the earlier one's, and the earlier mover stops at its next beat.
The mark goes when a walk ends and no later change replaced it. A mover whose process ended
leaves the mark behind; the maintenance leader takes it over once it has moved nothing for
REGROUP_STALE_S, from the last place it recorded (upkeep's `regroups` duty). A mover that
stops on purpose (its time spent, or a view of one tenant's rows, which would move that
tenant's chunks alone) leaves its mark free at once.

A paused queue's chunks have a group of their own, which no claim reads (migration 0027), so
that no claim reads past a paused backlog. A pause or a resume sets the queue's regroup_seq in
its own transaction; after it, `move_queue` walks the queue's chunks in batches, each advancing
regroup_seq, and whoever walks next (the maintenance leader, `move_queues_due`) goes on from
there. Every batch that moves a queue's chunks, a dependency's regroup's included, takes that
queue's turn first, so it reads the queue's status after the batch before it committed.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Callable
from functools import partial

from chunksync.backends.base import Backend, Session, in_transaction

REGROUP_BATCH = 5000  # chunks read a transaction (~0.1 s of moves)
REGROUP_STALE_S = 60.0  # a mover silent this long has stopped: another takes over
BEAT_EVERY_S = 5.0  # how often a mover records where it got to
# What a dashboard's change of limits, a program's declaration or upkeep's naming of a queue's
# dependency spends moving; the maintenance leader goes on with the rest (also a turn this long).
REGROUP_TURN_S = 2.0
FIRST_SEQ = -(2**31)  # before any chunk's seq


def this_process() -> str:
    """The mover's name: this host and process (a forked child is a mover of its own)."""
    return f"{socket.gethostname()}:{os.getpid()}"


def mark(s: Session, name: str) -> None:
    """In the transaction changing `name`'s limits: lock its queues' rows, and leave the mark
    that its chunks are to move (a later change's mark replaces an earlier one's)."""
    s.fetch_all("pg_deps_regroup_lock", {"name": name})
    s.execute(
        "pg_deps_regroup_mark", {"name": name, "token": str(uuid.uuid4()), "mover": this_process()}
    )


def move(backend: Backend, name: str, *, budget_s: float | None = None) -> int | None:
    """Move `name`'s chunks to their claim group, if a change left a mark that this process
    may go on with (its own, or one whose mover stopped). Within `budget_s` when given: the
    rest is left, with where it got to, for whichever mover comes next (the maintenance
    leader's duty within 10 s). A backend that sees one tenant's chunks alone leaves all of it
    so. Returns how many moved, or None when the walk did not end here: nothing to do, the
    budget spent, a later change, or one tenant's view."""
    if not backend.claim_groups:
        return None
    mover = this_process()
    if not backend.every_tenant:  # it would move one tenant's chunks, and call it done
        free(backend, name)
        return None
    taken = backend.fetch_all(
        "pg_deps_regroup_take",
        {"name": name, "mover": mover, "stale_s": REGROUP_STALE_S},
        write=True,
    )
    if not taken:
        return None
    row = taken[0]
    token, start_queue = str(row["token"]), row["queue_id"]
    after = FIRST_SEQ if row["seq"] is None else int(row["seq"])
    queues = [str(r["id"]) for r in backend.fetch_all("pg_deps_regroup_queues", {"name": name})]
    if start_queue is not None:
        queues = [q for q in queues if q >= str(start_queue)]
    started = beat = time.monotonic()
    moved = 0
    for queue in queues:
        if queue != start_queue:
            after = FIRST_SEQ
        while True:
            last, n = in_transaction(backend, partial(_batch, name=name, queue=queue, after=after))
            moved += n
            if last is None:  # the queue's end
                break
            after = last
            now = time.monotonic()
            spent = budget_s is not None and now - started >= budget_s
            if spent or now - beat >= BEAT_EVERY_S:
                beat = now
                place = {"queue_id": queue, "seq": after, "free": spent}
                if not _beat(backend, name, token, mover, place) or spent:
                    return None
    backend.execute("pg_deps_regroup_done", {"name": name, "token": token})
    return moved


def free(backend: Backend, name: str) -> None:
    """Leave this process's move of `name`'s chunks to the next mover at once, from the last
    place it recorded (a batch moved again moves nothing twice: each chunk is checked)."""
    backend.execute("pg_deps_regroup_free", {"name": name, "mover": this_process()})


def move_due(backend: Backend, *, budget_s: float) -> int:
    """The maintenance leader's turn: go on with the regroups left by a mover that stopped
    (or by this process), oldest first, within `budget_s` in all. Returns how many chunks
    moved."""
    if not backend.claim_groups:
        return 0
    due = backend.fetch_all(
        "pg_deps_regroup_due", {"mover": this_process(), "stale_s": REGROUP_STALE_S}
    )
    names = [str(r["dependency"]) for r in due]
    return _within(budget_s, names, lambda name, left: move(backend, name, budget_s=left) or 0)


def move_queue(backend: Backend, queue_id: str, *, budget_s: float | None = None) -> int:
    """Walk a paused or resumed queue's chunks to the claim group its status calls for (its
    regroup_seq: migration 0027), from where the last batch ended, whoever walked it; within
    `budget_s` when given (the maintenance leader goes on with the rest). A queue's chunks are
    its tenant's, so a view of one tenant's rows walks them too. Returns how many moved."""
    if not backend.claim_groups:
        return 0
    started, moved = time.monotonic(), 0
    while True:
        due, read, n = in_transaction(backend, partial(_queue_batch, queue=queue_id))
        moved += n
        if not due or read < REGROUP_BATCH:
            return moved
        if budget_s is not None and time.monotonic() - started >= budget_s:
            return moved


def move_queues_due(backend: Backend, *, budget_s: float) -> int:
    """The maintenance leader's turn for queues: start the walk of any queue resumed by code
    that did not (before migration 0027), then go on with the walks due, oldest first, within
    `budget_s` in all. Returns how many chunks moved."""
    if not backend.claim_groups:
        return 0
    backend.fetch_all("pg_queue_regroups_stranded", write=True)
    queues = [str(r["id"]) for r in backend.fetch_all("pg_queue_regroups_due")]
    return _within(budget_s, queues, lambda q, left: move_queue(backend, q, budget_s=left))


def _within(budget_s: float, walks: list[str], walk: Callable[[str, float], int]) -> int:
    """`walk(each, time left)` in turn until `budget_s` is spent in all (the maintenance
    leader's other duties wait meanwhile); the sum of what they moved. Those not reached wait
    for the next turn."""
    deadline, moved = time.monotonic() + budget_s, 0
    for each in walks:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        moved += walk(each, left)
    return moved


def _queue_batch(s: Session, *, queue: str) -> tuple[bool, int, int]:
    s.fetch_one("pg_queue_regroup_turn", {"queue_id": queue})
    row = s.fetch_one("pg_queue_regroup", {"queue_id": queue, "limit": REGROUP_BATCH})
    assert row is not None
    return bool(row["due"]), int(row["read"]), int(row["moved"])


def _batch(s: Session, *, name: str, queue: str, after: int) -> tuple[int | None, int]:
    s.fetch_one("pg_deps_regroup_turn", {"name": name})
    s.fetch_one("pg_queue_regroup_turn", {"queue_id": queue})
    params = {"name": name, "queue_id": queue, "after": after, "limit": REGROUP_BATCH}
    row = s.fetch_one("pg_deps_regroup", params)
    assert row is not None
    end = int(row["read"]) < REGROUP_BATCH
    return (None if end else int(row["last"])), int(row["moved"])


def _beat(backend: Backend, name: str, token: str, mover: str, place: dict[str, object]) -> bool:
    """Record how far the walk got; False if the regroup is no longer this mover's."""
    params = {"name": name, "token": token, "mover": mover, **place}
    return bool(backend.execute("pg_deps_regroup_beat", params))
