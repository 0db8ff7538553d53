"""`run_until_done()` returns what the run came to, and tells a listener how far it is."""

from __future__ import annotations

from typing import Any

import pytest

from chunksync.app import App
from chunksync.context import ChunkContext
from chunksync.exceptions import BackendBusy, BackendUnavailable, NotFound
from chunksync.models import ChunkStatus, Outcome
from chunksync.runtime import progress
from chunksync.runtime.progress import queues_finished
from tests.contract.test_observability_contract import record

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
    elsewhere = app.create_queue("other://y", [], name="elsewhere")
    summary = app.worker(queue_id=elsewhere.id, **FAST).run_until_done([q.id], timeout_s=0.3)
    assert not summary.finished and summary.total(ChunkStatus.PENDING) == 1
    assert summary.text().startswith("stopped before the queues finished")


def test_a_worker_of_a_queue_that_is_not_there_is_refused(app: App) -> None:
    """Not a worker that claims nothing for ever (PostgreSQL refused each of its claims of a
    text that is no uuid, logged once a second): one sentence, before it starts."""
    with pytest.raises(NotFound, match=r"^no queue with id 'elsewhere'$"):
        app.worker(queue_id="elsewhere", **FAST)
    with pytest.raises(NotFound, match="no queue with id"):
        app.worker(queue_id="0193c6a0-0000-7000-8000-000000000000", **FAST)


def test_a_database_away_at_a_check_is_ridden_out(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The workers go on through a database restart; so does the wait for the end: a check
    that finds the database away (or busy) is not an answer, the next one is."""
    app.handler("sum")(lambda ctx: 1)
    q = app.create_queue("sum://x", [{"n": n} for n in range(5)])
    refusals = [BackendUnavailable("restarting"), BackendBusy("busy")]

    class Away:  # the run's manager, its checks refused twice (the workers' reads are not)
        def __init__(self, manager: Any) -> None:
            self.manager = manager

        def __getattr__(self, name: str) -> Any:
            return getattr(self.manager, name)

        def queue_row(self, queue_id: str) -> Any:
            if refusals:
                raise refusals.pop(0)
            return self.manager.queue_row(queue_id)

    tracker_init = progress.Tracker.__init__

    def init(tracker: progress.Tracker, manager: Any, *args: Any) -> None:
        tracker_init(tracker, Away(manager), *args)

    monkeypatch.setattr(progress.Tracker, "__init__", init)
    summary = app.worker(**FAST).run_until_done([q.id], timeout_s=60)
    assert summary.finished and summary.total(ChunkStatus.COMPLETED) == 5
    assert refusals == []


def test_a_sync_waiting_for_its_queues_rides_out_the_database_away(app: App) -> None:
    """`queues_finished` (a sync's processes ask it every few ms): no answer while the database
    is away or busy, then the truth."""
    app.handler("sum")(lambda ctx: 1)
    q = app.create_queue("sum://x", [{"n": 1}])
    refusals = [BackendUnavailable("restarting"), BackendBusy("busy")]

    class Away:
        def queue_row(self, queue_id: str) -> Any:
            if refusals:
                raise refusals.pop(0)
            return app.manager.queue_row(queue_id)

    away: Any = Away()
    assert not queues_finished(away, [q.id]) and not queues_finished(away, [q.id])
    assert not queues_finished(away, [q.id])  # answered: not finished yet
    app.worker(**FAST).run_until_done([q.id], timeout_s=60)
    assert queues_finished(away, [q.id])


def test_the_tracker_reads_on_from_the_first_unfinished_and_sees_a_queue_reopen(app: App) -> None:
    """A check reads the queues up to the first that is not finished, from where the last
    stopped (over 50,000 queues it read every one every 20 ms); one that reopens behind it (a
    dead chunk retried) is seen when all the rest have finished."""
    app.handler("job")(lambda ctx: None)
    first = app.create_queue("job://x", [{}], name="first")
    second = app.create_queue("job://x", [{}], name="second")
    reads: list[str] = []
    row = app.manager.queue_row

    def counted(queue_id: str) -> Any:
        reads.append(queue_id)
        return row(queue_id)

    tracker = progress.Tracker(app.manager, [first.id, second.id])
    tracker.manager = type("Counted", (), {"queue_row": staticmethod(counted)})()  # type: ignore[assignment]
    assert not tracker.finished() and reads == [first.id]
    record(app, Outcome.DEAD, 0.01)  # the oldest chunk: the first queue's, which fails
    reads.clear()
    assert not tracker.finished() and reads == [first.id, second.id]
    reads.clear()
    assert not tracker.finished() and reads == [second.id]  # not the first again
    app.manager.retry_queue(first.id)  # reopened behind the tracker
    record(app, Outcome.COMPLETED, 0.01)  # the second queue's chunk
    assert not tracker.finished()  # all read once more: the first is open again
    record(app, Outcome.COMPLETED, 0.01)
    assert tracker.finished()


def test_a_summary_of_many_queues_reads_them_at_once_and_names_a_few(app: App) -> None:
    app.handler("job")(lambda ctx: None)
    n = progress.ONE_BY_ONE + 1
    queues = [app.create_queue("job://x", [{}], name=f"q{i:03d}") for i in range(n)]
    for _ in range(progress.SHOWN_DEAD + 2):
        record(app, Outcome.DEAD, 0.01)
    outcomes = progress.Tracker(app.manager, [q.id for q in queues]).outcomes()
    assert sorted(o.id for o in outcomes) == sorted(q.id for q in queues)
    summary = progress.RunSummary("w", True, 1.0, 12, 0, outcomes)
    named = [ln for ln in summary.text().splitlines() if ln.startswith("queue ")]
    assert len(named) == progress.SHOWN_DEAD
    assert summary.text().endswith("and 2 more queue(s) with dead chunks")
    assert summary.total(ChunkStatus.DEAD) == progress.SHOWN_DEAD + 2
