"""A paused queue's chunks in a claim group of their own, which no claim reads (PostgreSQL,
migrations 0027-0028; chunksync.deps.regroup.move_queue): moved there after a pause and back
after a resume, in batches, the walk's place kept on the queue's row (regroup_seq) for whoever
goes on with it; a resume by code that does not walk found and walked by the maintenance leader;
and every chunk still ends completed."""

from __future__ import annotations

import json
import threading
import time
from types import SimpleNamespace
from typing import Any

import psycopg
import pytest
import typer
from prometheus_client.parser import text_string_to_metric_families

from chunksync import sql
from chunksync.app import App
from chunksync.backends.base import Session
from chunksync.backends.postgres import to_psycopg
from chunksync.check import check_database
from chunksync.commands import operate as operate_cmd
from chunksync.deps import operate, regroup
from chunksync.observe import metrics
from tests import rawsql
from tests.acceptance.test_cli import run

pytestmark = pytest.mark.timeout(60)
DEP = "job://api.example.com"


@pytest.fixture(autouse=True)
def batches_of_four(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(regroup, "REGROUP_BATCH", 4)


def queue_of(app: App, n_chunks: int, name: str = "q") -> str:
    app.handler("job")(lambda ctx: None)
    return app.create_queue(f"{DEP}/{name}", [{"n": i} for i in range(n_chunks)]).id


def groups(url: str, queue: str) -> list[tuple[str, int]]:
    rows = rawsql.run(
        url,
        "SELECT claim_group, COUNT(*) FROM chunks WHERE queue_id = %s::uuid GROUP BY 1 ORDER BY 1",
        queue,
    )
    return [(str(g), int(n)) for g, n in rows]


def walk_due(url: str, queue: str) -> object:
    return rawsql.run(url, "SELECT regroup_seq FROM queues WHERE id = %s::uuid", queue)[0][0]


def test_a_pause_moves_the_open_chunks_to_the_paused_group_and_a_resume_back(
    pg_url: str,
) -> None:
    with App(pg_url) as app:
        q = queue_of(app, 10)
        other = queue_of(app, 3, "other")
        app.manager.pause_queue(q, move_s=None)
        assert groups(pg_url, q) == [(f"paused:{q}", 10)]
        assert groups(pg_url, other) == [("", 3)]  # another queue's chunks stay
        assert walk_due(pg_url, q) is None  # the walk ended
        # Batches of 4 (4, 4, 2, and an empty read at the end), each a transaction of its own.
        xmins = "SELECT COUNT(DISTINCT xmin::text) FROM chunks WHERE queue_id = %s::uuid"
        assert rawsql.run(pg_url, xmins, q) == [(3,)]
        app.manager.resume_queue(q, move_s=None)
        assert groups(pg_url, q) == [("", 10)] and walk_due(pg_url, q) is None
        app.worker(concurrency=2, poll_s=0.02).run_until_done([q, other], timeout_s=30)
        done = rawsql.run(pg_url, "SELECT status, COUNT(*) FROM chunks GROUP BY 1")
        assert done == [("completed", 13)]


def test_the_cli_moves_every_chunk_before_it_returns(pg_url: str) -> None:
    with App(pg_url) as app:
        q = queue_of(app, 9)
    paused = run("--db", pg_url, "pause", q)
    assert paused.returncode == 0, paused.stderr
    lines = paused.stdout.splitlines()
    assert lines[0] == "queue job://api.example.com/q is paused", paused.stdout
    assert lines[1].startswith("moving its open chunks to the paused claim group"), lines
    assert lines[2].startswith("moved 9 chunk(s) in "), lines
    assert groups(pg_url, q) == [(f"paused:{q}", 9)] and walk_due(pg_url, q) is None
    resumed = run("--db", pg_url, "resume", q, "--json")  # one JSON document, as before
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["status"] == "active"
    assert groups(pg_url, q) == [("", 9)] and walk_due(pg_url, q) is None


def test_pause_interrupted_leaves_the_rest_to_the_leader(
    pg_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Ctrl-C during the move: the pause stands, and the walk's place stays on the queue's
    # row for the maintenance leader (no mover to wait for).
    real, calls = regroup._queue_batch, []

    def interrupted(s: Session, *, queue: str) -> tuple[bool, int, int]:
        calls.append(queue)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(s, queue=queue)

    with App(pg_url) as app:
        q = queue_of(app, 10)
        queue = app.manager.pause_queue(q, move_s=0)
        monkeypatch.setattr(regroup, "_queue_batch", interrupted)
        with pytest.raises(typer.Exit) as stopped:
            operate_cmd._move_chunks(app.backend, queue, quiet=False)
        assert stopped.value.exit_code == 130
        out = capsys.readouterr().out
        assert "interrupted: the queue stays paused, and a worker's maintenance leader" in out
        assert groups(pg_url, q) == [("", 6), (f"paused:{q}", 4)]
        monkeypatch.setattr(regroup, "_queue_batch", real)
        assert regroup.move_queues_due(app.backend, budget_s=10.0) == 6
        assert groups(pg_url, q) == [(f"paused:{q}", 10)] and walk_due(pg_url, q) is None


def test_chunks_added_to_a_paused_queue_go_to_its_paused_group(pg_url: str) -> None:
    with App(pg_url) as app:
        q = queue_of(app, 2)
        app.manager.pause_queue(q, move_s=None)
        assert app.manager.add_chunks(q, [{"n": 10}, {"n": 11}]) == 2
        # As the code before 0027 inserts them: in '' (its claim group by the dependency alone);
        # the insert's trigger reads the queue's status under its lock.
        rawsql.run(
            pg_url,
            "INSERT INTO chunks (id, queue_id, seq, payload, run_after, created_at, updated_at,"
            " fair_key) VALUES (gen_random_uuid(), %s::uuid, 99, '{}', 0, 0, 0, 0)",
            q,
        )
        assert groups(pg_url, q) == [(f"paused:{q}", 5)]


def test_a_walk_cut_short_is_finished_by_the_leader_from_where_it_got_to(pg_url: str) -> None:
    with App(pg_url) as app:
        q = queue_of(app, 10)
        app.manager.pause_queue(q, move_s=0)  # no move: the walk is due from the first chunk
        assert groups(pg_url, q) == [("", 10)] and walk_due(pg_url, q) == -(2**31)
        assert regroup.move_queue(app.backend, q, budget_s=0.0) == 4  # a batch, time spent
        assert groups(pg_url, q) == [("", 6), (f"paused:{q}", 4)]
        fourth = "SELECT seq FROM chunks WHERE queue_id = %s::uuid ORDER BY seq LIMIT 1 OFFSET 3"
        assert walk_due(pg_url, q) == rawsql.run(pg_url, fourth, q)[0][0]
        assert check_database(app.backend).ok  # a walk under way is not damage
        assert regroup.move_queues_due(app.backend, budget_s=10.0) == 6
        assert groups(pg_url, q) == [(f"paused:{q}", 10)] and walk_due(pg_url, q) is None


def test_a_status_change_during_a_walk_starts_it_again(pg_url: str) -> None:
    with App(pg_url) as app:
        q = queue_of(app, 10)
        app.manager.pause_queue(q, move_s=0)
        assert regroup.move_queue(app.backend, q, budget_s=0.0) == 4
        app.manager.resume_queue(q, move_s=0)
        assert regroup.move_queue(app.backend, q, budget_s=0.0) == 4  # the first batch's 4
        assert groups(pg_url, q) == [("", 10)]
        assert walk_due(pg_url, q) is not None  # the rest of the queue is still walked
        assert regroup.move_queues_due(app.backend, budget_s=10.0) == 0
        assert groups(pg_url, q) == [("", 10)] and walk_due(pg_url, q) is None


def test_a_resume_by_code_that_does_not_walk_is_found_and_walked_by_the_leader(
    pg_url: str,
) -> None:
    with App(pg_url) as app:
        q = queue_of(app, 7)
        app.manager.pause_queue(q, move_s=None)
        # The code before 0027 resumes with a bare status change: the chunks stay where no
        # claim reads them, and check says so.
        rawsql.run(pg_url, "UPDATE queues SET status = 'active' WHERE id = %s::uuid", q)
        report = check_database(app.backend)
        assert not report.ok and report.violations == 7
        [finding] = report.findings
        assert finding.check == "check_claim_groups"
        assert "chunksync_queue_claim_group" in finding.line()
        assert regroup.move_queues_due(app.backend, budget_s=10.0) == 7
        assert groups(pg_url, q) == [("", 7)] and check_database(app.backend).ok
        app.worker(concurrency=1, poll_s=0.02).run_until_done([q], timeout_s=30)
        assert rawsql.run(pg_url, "SELECT status, COUNT(*) FROM chunks GROUP BY 1") == [
            ("completed", 7)
        ]


def test_a_change_of_limits_leaves_a_paused_queues_chunks_paused(pg_url: str) -> None:
    with App(pg_url) as app:
        paused, running = queue_of(app, 5, "paused"), queue_of(app, 5, "running")
        app.manager.pause_queue(paused, move_s=None)
        operate.set_limits(app.deps, DEP, {"connections": 2}, reason="provider asked")
        assert groups(pg_url, paused) == [(f"paused:{paused}", 5)]
        assert groups(pg_url, running) == [(DEP, 5)]
        app.manager.resume_queue(paused, move_s=None)
        assert groups(pg_url, paused) == [(DEP, 5)]


def _claimed(conn: psycopg.Connection[Any], params: dict[str, Any]) -> str:
    text = to_psycopg(sql.queries("postgres")["claim_chunks"])
    with conn.transaction(force_rollback=True):
        rows = conn.execute(b"EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) " + text, params)
        return "\n".join(str(r[0]) for r in rows.fetchall())


def test_no_claim_reads_past_a_paused_queues_backlog(pg_url: str) -> None:
    # A paused queue's 2,000 chunks ahead in the fair order (enqueued first), a small queue's
    # behind: before 0027 each claim read the paused ones one by one (its filter removed them).
    with App(pg_url) as app:
        app.handler("job")(lambda ctx: None)
        big = app.create_queue(f"{DEP}/big", [{"n": i} for i in range(2000)]).id
        app.create_queue(f"{DEP}/small", [{"n": i} for i in range(200)])
        app.manager.pause_queue(big, move_s=None)
    claim = {
        "token": "00000000-0000-0000-0000-000000000001", "lease_s": 30.0, "worker_id": "w",
        "limit": 100, "kinds": ["job"], "exclude": [], "queue_id": None, "aging_s": 300.0,
    }  # fmt: skip
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("ANALYZE chunks")
        plan = _claimed(conn, claim)
    assert "Update on chunks c (actual rows=100 " in plan, plan
    reads = plan.split("Index Scan using chunks_claim_fair")[1:]
    assert any(r.startswith(" on chunks c") and "actual rows=100 " in r for r in reads), plan
    for read in reads:
        assert "Rows Removed by Filter" not in read.split("->", 1)[0], plan


def test_one_tenants_view_moves_its_own_queues_chunks(pg_url: str) -> None:
    # A queue's chunks are all its tenant's: a view of that tenant's rows (row-level security)
    # walks them as any other process would, and no other tenant's chunk moves.
    with App(pg_url) as app:
        app.handler("job")(lambda ctx: None)
        mine, theirs = (
            app.create_queue(f"{DEP}/{t}", [{"n": i} for i in range(5)], tenant=t).id
            for t in ("a", "b")
        )
        app.manager.pause_queue(theirs, move_s=None)
        view = app.for_tenant("a")
        view.manager.pause_queue(mine, move_s=None)
        assert groups(pg_url, mine) == [(f"paused:{mine}", 5)] and walk_due(pg_url, mine) is None
        view.manager.resume_queue(mine, move_s=None)
        assert groups(pg_url, mine) == [("", 5)]
        assert groups(pg_url, theirs) == [(f"paused:{theirs}", 5)]


def test_the_leaders_turn_keeps_to_its_budget_across_queues(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The leader's other duties wait while it moves chunks: its turn ends when its budget is
    # spent, whatever number of queues are due (a clock that moves 1 s a look).
    with App(pg_url) as app:
        first, second = queue_of(app, 10, "first"), queue_of(app, 10, "second")
        for q in (first, second):
            app.manager.pause_queue(q, move_s=0)
        ticks = iter(range(1000))
        clock = SimpleNamespace(monotonic=lambda: float(next(ticks)))
        monkeypatch.setattr(regroup, "time", clock)  # regroup's clock alone
        assert regroup.move_queues_due(app.backend, budget_s=1.5) == 4  # one batch in all
        moved = groups(pg_url, first) + groups(pg_url, second)
        assert sorted(moved) == [("", 6), ("", 10), (f"paused:{first}", 4)]


def test_pauses_and_resumes_while_a_worker_drains_lose_nothing(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Ten pauses and resumes, walks cut short and left to the leader's turn, and chunks added
    # meanwhile, while two slots drain the queue: every chunk runs once and completes, and
    # none is left in a group no claim reads. (Not a timing test: only the order of events
    # varies from run to run.)
    monkeypatch.setattr(regroup, "REGROUP_BATCH", 50)
    ran: list[int] = []
    with App(pg_url) as app:

        def job(ctx: Any) -> None:
            time.sleep(0.002)  # so that the queue outlasts the churn
            ran.append(int(ctx.payload["n"]))

        app.handler("job")(job)
        q = app.create_queue(f"{DEP}/busy", [{"n": i} for i in range(3000)]).id
        churned = threading.Event()

        def churn() -> None:
            for round_ in range(10):
                budget = None if round_ % 3 == 0 else 0.0
                app.manager.pause_queue(q, move_s=budget)
                first = 3000 + round_ * 20
                app.manager.add_chunks(q, [{"n": n} for n in range(first, first + 20)])
                regroup.move_queues_due(app.backend, budget_s=0.01)
                app.manager.resume_queue(q, move_s=budget)
                regroup.move_queues_due(app.backend, budget_s=0.01)
            regroup.move_queues_due(app.backend, budget_s=30.0)
            churned.set()

        thread = threading.Thread(target=churn)
        thread.start()
        worker = app.worker(concurrency=2, poll_s=0.01)
        worker.run(until=lambda: churned.is_set() and app.manager.get_queue(q).status.value
                   == "completed", check_s=0.05)  # fmt: skip
        thread.join()
        assert sorted(ran) == list(range(3200))  # each chunk once
        statuses = rawsql.run(pg_url, "SELECT status, COUNT(*) FROM chunks GROUP BY 1")
        assert statuses == [("completed", 3200)] and walk_due(pg_url, q) is None
        # A chunk in flight when its queue was paused moved with the others and may have
        # completed there: a completed chunk's group is read by no claim, and walked by none.
        assert check_database(app.backend).ok


def test_prometheus_shows_a_queues_chunks_moving_until_they_have(pg_url: str) -> None:
    def moving(app: App) -> dict[str, float]:
        body, _ = metrics.render(app.manager)
        return {
            s.labels["queue_id"]: float(s.value)
            for family in text_string_to_metric_families(body.decode())
            for s in family.samples
            if s.name == "chunksync_queue_chunks_moving_seconds"
        }

    with App(pg_url) as app:
        q = queue_of(app, 10)
        assert moving(app) == {}
        app.manager.pause_queue(q, move_s=0)  # the walk is due, nobody has walked it yet
        rawsql.run(pg_url, "UPDATE queues SET updated_at = updated_at - 90 WHERE id = %s::uuid", q)
        assert 90 <= moving(app)[q] < 120
        assert regroup.move_queues_due(app.backend, budget_s=10.0) == 10
        assert moving(app) == {}
