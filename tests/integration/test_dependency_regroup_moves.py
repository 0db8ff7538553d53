"""The move of a dependency's chunks to their claim group after a change of its limits, on
PostgreSQL (chunksync.deps.regroup): in batches after the change's own transaction, the mark of
a mover that stopped taken over by the maintenance leader from where it got to, and a later
change's move replacing an earlier one's."""

from __future__ import annotations

import httpx
import pytest
import typer
from prometheus_client.parser import text_string_to_metric_families

from chunksync.app import App
from chunksync.backends.base import Session
from chunksync.check import check_database
from chunksync.commands import deps as deps_cmd
from chunksync.deps import operate, regroup
from chunksync.deps import view as deps_view
from chunksync.observe import metrics
from chunksync.web import actions
from tests import rawsql
from tests.acceptance.test_cli import run
from tests.acceptance.web_server import serve

pytestmark = pytest.mark.timeout(60)
DEP = "job://api.example.com"


@pytest.fixture(autouse=True)
def batches_of_four(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(regroup, "REGROUP_BATCH", 4)


def queues_of(app: App, n_queues: int, n_chunks: int) -> list[str]:
    app.handler("job")(lambda ctx: None)
    payloads = [{"n": i} for i in range(n_chunks)]
    return [app.create_queue(f"{DEP}/q{i}", payloads).id for i in range(n_queues)]


def groups(url: str) -> list[tuple[str, int]]:
    rows = rawsql.run(url, "SELECT claim_group, COUNT(*) FROM chunks GROUP BY 1 ORDER BY 1")
    return [(str(g), int(n)) for g, n in rows]


def marked_only(app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    """Limit DEP as an operator's process would that ended after the change's commit, before
    its move began: the mark is left, no chunk moved."""
    with monkeypatch.context() as patched:
        patched.setattr(regroup, "move", lambda *a, **k: None)
        operate.set_limits(app.deps, DEP, {"connections": 3}, reason="provider asked")


def marks(url: str) -> list[tuple[object, ...]]:
    return rawsql.run(url, "SELECT dependency, mover, queue_id::text, seq FROM claim_regroups")


def test_a_change_moves_the_chunks_in_batches_after_its_own_transaction(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with App(pg_url) as app:
        queues_of(app, 2, 10)
        operate.set_limits(app.deps, DEP, {"rate": "5/s"}, reason="provider asked")
        assert groups(pg_url) == [(DEP, 20)]
        assert marks(pg_url) == []  # the walk ended: no mark is left
        # Each queue in batches of 4 chunks (4, 4, 2), each batch a transaction of its own,
        # none the change's: its transaction wrote the dependency's row.
        xmins = rawsql.run(pg_url, "SELECT COUNT(DISTINCT xmin::text) FROM chunks")
        assert xmins == [(6,)]
        audit = rawsql.run(pg_url, "SELECT xmin::text FROM audit_log")
        chunk_xmins = rawsql.run(pg_url, "SELECT DISTINCT xmin::text FROM chunks")
        assert audit and audit[0] not in chunk_xmins


def test_a_mover_that_stopped_is_taken_over_from_where_it_got_to(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with App(pg_url) as app:
        first, _ = sorted(queues_of(app, 2, 10))
        # The operator's process ends after the change's commit, before its move ends: its
        # mark says its mover got to the first queue's 8th chunk, and went silent.
        marked_only(app, monkeypatch)
        assert groups(pg_url) == [("", 20)]
        rawsql.run(
            pg_url,
            "UPDATE claim_regroups SET mover = 'gone:1', queue_id = %s, seq = 8,"
            " beat_at = beat_at - 3600",
            first,
        )
        rawsql.run(pg_url, "UPDATE chunks SET claim_group = %s WHERE queue_id = %s AND seq <= 8",
                   DEP, first)  # fmt: skip
        # A live mover's mark is its own: nobody takes it over.
        rawsql.run(pg_url, "UPDATE claim_regroups SET beat_at = beat_at + 3600")
        assert regroup.move_due(app.backend, budget_s=10.0) == 0
        rawsql.run(pg_url, "UPDATE claim_regroups SET beat_at = beat_at - 3600")

        worker = app.worker(concurrency=1)
        seen: list[str] = []
        real = regroup._batch

        def batch(s: Session, *, name: str, queue: str, after: int) -> tuple[int | None, int]:
            seen.append(f"{'first' if queue == first else 'second'}>{after}")
            return real(s, name=name, queue=queue, after=after)

        monkeypatch.setattr(regroup, "_batch", batch)
        worker.upkeep.move_regroups()  # the maintenance leader's duty
        assert seen == ["first>8", "second>-2147483648", "second>4", "second>8"]
        assert groups(pg_url) == [(DEP, 20)] and marks(pg_url) == []
        assert app.manager.claim("w", ["job"], limit=20)[1] == []  # the plain claim: none


def test_a_turn_within_its_budget_records_its_place_and_the_next_goes_on(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with App(pg_url) as app:
        (queue,) = queues_of(app, 1, 10)
        marked_only(app, monkeypatch)
        assert regroup.move(app.backend, DEP, budget_s=0.0) is None  # one batch, then its place
        assert groups(pg_url) == [("", 6), (DEP, 4)]
        assert marks(pg_url) == [(DEP, regroup.this_process(), queue, 4)]
        free = rawsql.run(pg_url, "SELECT beat_at FROM claim_regroups")
        assert free == [(0.0,)]  # any mover may go on with it at once
        assert regroup.move(app.backend, DEP) == 6
        assert groups(pg_url) == [(DEP, 10)] and marks(pg_url) == []


def test_a_later_change_replaces_an_earlier_ones_move(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with App(pg_url) as app:
        queues_of(app, 1, 10)
        marked_only(app, monkeypatch)
        assert regroup.move(app.backend, DEP, budget_s=0.0) is None
        token = rawsql.run(pg_url, "SELECT token FROM claim_regroups")
        # Another operator lifts the limit before the first move ends: its mark replaces the
        # first one's (a new token, from the first queue), and its move takes every chunk back.
        operate.set_limits(app.deps, DEP, {"connections": None}, reason="y")
        assert rawsql.run(pg_url, "SELECT token FROM claim_regroups") == []
        assert token and groups(pg_url) == [("", 10)]
        assert len(app.manager.claim("w", ["job"], limit=20)[1]) == 10


def test_check_names_a_chunk_left_in_the_wrong_group_but_not_one_whose_move_is_under_way(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with App(pg_url) as app:
        queues_of(app, 1, 3)
        marked_only(app, monkeypatch)
        assert check_database(app.backend).ok  # the move is under way: its mark is there
        rawsql.run(pg_url, "DELETE FROM claim_regroups")  # a mark lost past the code
        report = check_database(app.backend)
        assert not report.ok and report.violations == 3
        [finding] = report.findings
        assert finding.check == "check_claim_groups"
        assert "chunksync_queue_claim_group" in finding.line()


def test_one_tenants_view_leaves_the_move_to_a_mover_that_sees_every_chunk(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A view of one tenant's rows (row-level security; a tenant-scoped worker's upkeep naming a
    # queue's dependency) would move that tenant's chunks alone and call the walk done: it
    # leaves the mark free for a mover that sees every tenant's.
    with App(pg_url) as app:
        app.handler("job")(lambda ctx: None)
        for tenant in ("a", "b"):
            app.create_queue(f"{DEP}/{tenant}", [{"n": i} for i in range(3)], tenant=tenant)
        marked_only(app, monkeypatch)
        assert regroup.move(app.for_tenant("a").backend, DEP) is None
        assert groups(pg_url) == [("", 6)]
        assert rawsql.run(pg_url, "SELECT beat_at FROM claim_regroups") == [(0.0,)]
        assert regroup.move_due(app.backend, budget_s=10.0) == 6
        assert groups(pg_url) == [(DEP, 6)] and marks(pg_url) == []


def test_a_dashboards_change_moves_for_a_turn_and_leaves_the_rest_to_the_leader(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A web request does not wait for a million chunks to move: it moves for a turn, and the
    # maintenance leader goes on from there at once (the mark is left free).
    monkeypatch.setattr(regroup, "REGROUP_TURN_S", 0.0)
    with App(pg_url) as app:
        queues_of(app, 1, 10)
        said = actions.act(app, "dependency", DEP, "limits", {"connections": 3})
        assert said.startswith(f"dependency {DEP}: connections -,")
        assert groups(pg_url) == [("", 6), (DEP, 4)]
        assert regroup.move_due(app.backend, budget_s=10.0) == 6
        assert groups(pg_url) == [(DEP, 10)] and marks(pg_url) == []


def moving_seconds(app: App) -> float | None:
    """The Prometheus gauge of DEP's move under way, or None when it is left out."""
    body, _ = metrics.render(app.manager)
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            if sample.name == "chunksync_dependency_chunks_moving_seconds":
                assert sample.labels == {"dependency": DEP}
                return float(sample.value)
    return None


def test_the_dependency_shows_its_chunks_moving_until_they_have(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with App(pg_url) as app:
        queues_of(app, 1, 10)
        marked_only(app, monkeypatch)
        [dep] = app.deps.all()
        shown = deps_view.shown(dep, app.manager.now())
        assert shown["chunks_moving_since"].endswith("+00:00")
        assert deps_view.row(dep, app.manager.now())[1] == "ok, moving"
        rawsql.run(pg_url, "UPDATE claim_regroups SET since = since - 90")
        assert 90 <= (moving_seconds(app) or 0) < 120
        with serve(app) as base:
            assert ">moving</span>" in httpx.get(f"{base}/fragments/dependencies").text
            assert regroup.move(app.backend, DEP) == 10
            assert ">moving</span>" not in httpx.get(f"{base}/fragments/dependencies").text
        [dep] = app.deps.all()
        assert deps_view.shown(dep, app.manager.now())["chunks_moving_since"] is None
        assert deps_view.row(dep, app.manager.now())[1] == "ok"
        assert moving_seconds(app) is None


def test_deps_set_says_how_the_move_went(pg_url: str) -> None:
    with App(pg_url) as app:
        queues_of(app, 2, 5)
    said = run("deps", "set", DEP, "--rate", "5/s", db=pg_url).stdout
    assert f"dependency {DEP}: connections -, rate -, burst - -> connections -, rate 5/s" in said
    assert "moving its open chunks to the claim group" in said
    assert "moved 10 chunk(s) in " in said
    assert groups(pg_url) == [(DEP, 10)] and marks(pg_url) == []
    said = run("deps", "set", DEP, "--burst", "3", db=pg_url).stdout  # the same group
    assert "moving" not in said and "moved" not in said


def test_a_queue_whose_chunks_all_completed_is_not_walked(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with App(pg_url) as app:
        done, open_ = queues_of(app, 2, 3)
        rawsql.run(pg_url, "UPDATE chunks SET status = 'completed', finished_at = 1"
                           " WHERE queue_id = %s", done)  # fmt: skip
        walked: list[str] = []
        real = regroup._batch

        def batch(s: Session, *, name: str, queue: str, after: int) -> tuple[int | None, int]:
            walked.append(queue)
            return real(s, name=name, queue=queue, after=after)

        monkeypatch.setattr(regroup, "_batch", batch)
        operate.set_limits(app.deps, DEP, {"connections": 3}, reason="x")
        assert walked == [open_]
        assert groups(pg_url) == [("", 3), (DEP, 3)] and marks(pg_url) == []


def test_check_notes_chunks_waiting_for_a_move_nobody_has_taken_on(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with App(pg_url) as app:
        queues_of(app, 1, 3)
        marked_only(app, monkeypatch)
        assert check_database(app.backend).findings == ()  # its mover is at it, for all we know
        rawsql.run(pg_url, "UPDATE claim_regroups SET beat_at = beat_at - 601")
        report = check_database(app.backend)
        assert report.ok  # a note: the chunks wait, none is lost
        [finding] = report.findings
        assert finding.check == "check_claim_group_moves" and finding.count == 3
        assert "start a worker" in finding.line()


def test_deps_set_interrupted_leaves_the_rest_to_the_leader_at_once(
    pg_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Ctrl-C during the move: the change stands, the mark is left free (not a minute of
    # silence), and the maintenance leader goes on from the last place recorded.
    real, calls = regroup._batch, []

    def interrupted(s: Session, *, name: str, queue: str, after: int) -> tuple[int | None, int]:
        calls.append(after)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(s, name=name, queue=queue, after=after)

    with App(pg_url) as app:
        queues_of(app, 1, 10)
        monkeypatch.setattr(regroup, "_batch", interrupted)
        change = operate.change_limits(app.deps, DEP, {"connections": 3}, reason="x")
        assert change.moving
        with pytest.raises(typer.Exit) as stopped:
            deps_cmd.move_chunks(app.backend, DEP)
        assert stopped.value.exit_code == 130
        assert "interrupted: the change stands" in capsys.readouterr().out
        assert groups(pg_url) == [("", 6), (DEP, 4)]
        assert rawsql.run(pg_url, "SELECT beat_at FROM claim_regroups") == [(0.0,)]
        monkeypatch.setattr(regroup, "_batch", real)
        assert regroup.move_due(app.backend, budget_s=10.0) == 6
        assert groups(pg_url) == [(DEP, 10)] and marks(pg_url) == []
