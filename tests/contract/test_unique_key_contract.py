"""Uniqueness keys for queues, on every backend: enqueueing with a key an unfinished queue holds
returns that queue, racing enqueuers agree on one queue, and a finished queue frees its key."""

from __future__ import annotations

import threading

from chunksync.app import App
from chunksync.models import QueueStatus


def test_a_held_key_returns_the_queue_that_holds_it(app: App) -> None:
    app.handler("job")(lambda ctx: None)
    first = app.create_queue("job://x", [{"n": 1}], unique_key="nightly")
    again = app.create_queue("job://x", [{"n": 2}, {"n": 3}], unique_key="nightly")
    assert again.id == first.id and again.total == 1  # nothing added
    other_tenant = app.create_queue("job://x", [{}], unique_key="nightly", tenant="acme")
    assert other_tenant.id != first.id
    app.manager.pause_queue(first.id)  # paused still holds it
    assert app.create_queue("job://x", [{}], unique_key="nightly").id == first.id
    app.manager.cancel_queue(first.id)  # finished: the key is free again
    fresh = app.create_queue("job://x", [{}, {}], unique_key="nightly")
    assert fresh.id != first.id and fresh.total == 2
    assert app.manager.get_queue(first.id).status is QueueStatus.CANCELLED
    keyless = [app.create_queue("job://x", [{}]).id for _ in range(2)]
    assert keyless[0] != keyless[1]  # no key, no uniqueness


def test_racing_enqueuers_agree_on_one_queue(app: App) -> None:
    app.handler("job")(lambda ctx: None)
    ids: list[str] = []
    start = threading.Barrier(4)

    def enqueue() -> None:
        start.wait()
        ids.append(app.create_queue("job://x", [{}], unique_key="once").id)

    threads = [threading.Thread(target=enqueue) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(ids) == 4 and len(set(ids)) == 1
    assert len(app.manager.list_queues()) == 1
