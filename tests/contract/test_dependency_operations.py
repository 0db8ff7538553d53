"""What operators and programs see and set of the dependency rows, identical on every backend:
declarations (names and patterns, applied when a row is first made), an operator's changes
with their audit entries, the Prometheus metrics and the `dependency_gated` alert."""

from __future__ import annotations

import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from chunksync.app import App
from chunksync.deps import operate, view
from chunksync.deps.gate import Flow
from chunksync.deps.model import Limits, Rate, parse_rate
from chunksync.exceptions import ConfigurationError, NotFound
from chunksync.observe import alerts, metrics
from chunksync.observe.model import HealthThresholds
from chunksync.retry import StressConfig

pytestmark = pytest.mark.timeout(60)
GMAIL = "imap://*@imap.gmail.com"
ALICE = "imap://alice@imap.gmail.com"


def queue_of(app: App, dependency: str, n: int = 3) -> str:
    """A queue whose source leans on `dependency` (a job:// host): create_queue names it."""
    app.handler("job")(lambda ctx: None)
    q = app.create_queue(f"{dependency}/pages", [{"n": i} for i in range(n)])
    assert app.backend.fetch_one("deps_get", {"name": dependency}) is not None
    return q.id


def test_a_pattern_declaration_applies_when_a_row_is_made(app: App) -> None:
    app.dependency(GMAIL, connections=15, rate="250/s", burst=50)
    app.dependency("imap://*", connections=2)
    assert app.deps.all() == []  # a pattern makes no row by itself
    assert app.ensure_dependency(ALICE)
    assert app.ensure_dependency("imap://bob@mail.example.com")
    alice = app.deps.get(ALICE)
    assert alice.limits == Limits(15, parse_rate("250/s"), 50)  # the most specific pattern
    assert app.deps.get("imap://bob@mail.example.com").limits == Limits(connections=2)
    assert app.ensure_dependency("job://undeclared")
    assert app.deps.get("job://undeclared").limits == Limits()
    assert not app.ensure_dependency(ALICE)  # made once


def test_an_exact_declaration_makes_its_row_and_never_undoes_an_operators_change(
    db_url: str,
) -> None:
    with App(db_url) as first:
        limits = first.dependency("job://api.example.com", connections=3, rate=Rate(10, 1))
        assert limits == Limits(3, Rate(10.0, 1.0))
        assert first.deps.get("job://api.example.com").limits == limits
        operate.set_limits(
            first.deps, "job://api.example.com", {"connections": 8}, reason="more room"
        )
    with App(db_url) as again:  # the program starts again with the same declaration
        again.dependency("job://api.example.com", connections=3, rate="10/s")
        assert again.deps.get("job://api.example.com").limits.connections == 8
        assert again.registry.declared_limits("job://api.example.com") == limits


def test_bad_declarations_are_one_sentence(app: App) -> None:
    with pytest.raises(ConfigurationError, match="is not a rate"):
        app.dependency("api", rate="fast")
    with pytest.raises(ConfigurationError, match="at least 1"):
        app.dependency("api", connections=0)
    assert app.deps.all() == []


def test_an_operators_changes_are_audited_with_before_and_after(app: App) -> None:
    app.dependency("api", connections=3)
    before, after = operate.set_limits(
        app.deps, "api", {"rate": "5/min", "connections": None}, reason="provider asked"
    )
    assert before == Limits(connections=3) and after == Limits(rate=Rate(5.0, 60.0))
    closed = operate.set_flow(app.deps, "api", stopped=True, reason="outage")
    assert closed.state.flow is Flow.STOPPED and closed.state.gated_since is not None
    opened = operate.set_flow(app.deps, "api", stopped=False, reason="back")
    assert opened.state.flow is Flow.OK and opened.capacity is None  # a full budget
    rows = operate.history(app.backend, "api")
    assert [r["action"] for r in rows] == ["deps_open", "deps_close", "deps_set"]
    entries = {e.action: e for e in app.manager.list_audit()}
    set_entry = entries["deps_set"]
    assert (set_entry.actor, set_entry.reason) == ("operator", "provider asked")
    assert set_entry.details == {
        "dependency": "api",
        "before": {"connections": 3, "rate": None, "burst": None},
        "after": {"connections": None, "rate": "5/m", "burst": None},
    }
    assert entries["deps_close"].details["after"]["flow"] == "stopped"
    assert operate.history(app.backend, "other") == []


def test_a_change_of_limits_moves_the_chunks_enqueued_before_it(app: App) -> None:
    # A limited dependency's chunks are claimed by its own claim, under its row's lock; the rest
    # by the plain claim. Where chunks carry a claim group (PostgreSQL), a change of limits
    # moves those already enqueued (and a dead one, which may be revived), so that the claim
    # now theirs finds them and the other does not: none is left behind, none taken twice.
    dep = "job://api.example.com"
    queue = queue_of(app, dep, 4)

    def plain(n: int) -> list[str]:
        return [c.id for c in app.manager.claim("w", ["job"], limit=n)[1]]

    def limited(n: int) -> list[str]:
        got = app.deps.claim(
            dep, queue_id=queue, worker_id="w", kinds=["job"], limit=n, lease_s=30.0,
            config=StressConfig(),
        )  # fmt: skip
        return [c.id for c in got.chunks]

    first = plain(1)
    assert len(first) == 1
    operate.set_limits(app.deps, dep, {"connections": 2}, reason="provider asked")
    assert plain(4) == []
    second = limited(1)
    assert len(second) == 1 and second != first
    operate.set_limits(app.deps, dep, {"connections": None}, reason="lifted")
    rest = plain(4)
    assert len(rest) == 2 and not set(rest) & set(first + second)


def test_a_refused_change_leaves_no_trace(app: App) -> None:
    app.dependency("api", connections=3)
    with pytest.raises(NotFound, match=r"no dependency named 'nope' \(known: api\)"):
        operate.set_limits(app.deps, "nope", {"connections": 2}, reason="x")
    with pytest.raises(ConfigurationError, match="at least 1"):
        operate.set_limits(app.deps, "api", {"connections": -1}, reason="x")
    with pytest.raises(NotFound):
        operate.set_flow(app.deps, "nope", stopped=True, reason="x")
    assert app.deps.get("api").limits == Limits(connections=3)
    assert operate.history(app.backend) == []


def samples_of(app: App) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    body, _ = metrics.render(app.manager)
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }


def test_dependency_metrics(app: App) -> None:
    app.dependency("job://api.example.com", connections=2, rate="120/m", burst=5)
    queues = [queue_of(app, "job://api.example.com", 5)]
    got = [  # three slot threads, each asking for a connection permit: the third waits
        app.deps.claim(
            "job://api.example.com",
            queue_id=queues[0],
            worker_id="w1",
            kinds=["job"],
            limit=1,
            lease_s=30.0,
            config=StressConfig(),
        )
        for _ in range(3)
    ]
    assert [len(g.chunks) for g in got] == [1, 1, 0] and got[2].waiting_for == "connections"
    app.ensure_dependency("imap://alice@mail.example.com")
    app.deps.set_flow("imap://alice@mail.example.com", True, StressConfig())
    samples = samples_of(app)
    api = (("dependency", "job://api.example.com"),)
    alice = (("dependency", "imap://alice@mail.example.com"),)
    assert samples[("chunksync_dependency_slots_in_use", api)] == 2
    assert samples[("chunksync_dependency_connections_limit", api)] == 2
    assert samples[("chunksync_dependency_rate_limit_per_second", api)] == 2.0
    assert samples[("chunksync_dependency_tokens", api)] == 10.0
    assert samples[("chunksync_dependency_gated", api)] == 0
    assert samples[("chunksync_dependency_gated", alice)] == 1
    assert ("chunksync_dependency_connections_limit", alice) not in samples  # no cap
    waits = {
        dict(k[1])["reason"]: v
        for k, v in samples.items()
        if k[0] == "chunksync_dependency_waits_total"
        and ("dependency", "job://api.example.com") in k[1]
    }
    assert waits == {"connections": 1, "rate": 0, "gate": 0}
    assert samples[("chunksync_dependency_probes_total", api)] == 0


def test_dependency_metrics_name_the_gated_and_the_busiest_and_sum_the_rest(app: App) -> None:
    """5,000 accounts' caps were 50,000 series: the top N by concern keep their names."""
    app.dependency("job://busy.example.com", connections=3)
    busy = queue_of(app, "job://busy.example.com", 5)
    for quiet in ("job://a.example.com", "job://b.example.com", "job://c.example.com"):
        app.ensure_dependency(quiet)
    app.ensure_dependency("imap://alice@mail.example.com")
    app.deps.set_flow("imap://alice@mail.example.com", True, StressConfig())
    for _ in range(2):  # two slot threads hold permits of the busy one
        app.deps.claim("job://busy.example.com", queue_id=busy, worker_id="w", kinds=["job"],
                       limit=1, lease_s=30.0, config=StressConfig())  # fmt: skip

    def family(top: int, name: str) -> dict[str, float]:
        body, _ = metrics.render(app.manager, top_dependencies=top)
        return {
            s.labels["dependency"]: s.value
            for f in text_string_to_metric_families(body.decode())
            for s in f.samples
            if s.name == name
        }

    gated, slots = (
        family(2, "chunksync_dependency_gated"),
        family(2, "chunksync_dependency_slots_in_use"),
    )
    assert set(slots) == {"imap://alice@mail.example.com", "job://busy.example.com", "other"}
    assert gated["imap://alice@mail.example.com"] == 1 and gated["other"] == 0
    assert slots["job://busy.example.com"] == 2 and slots["other"] == 0
    assert "other" not in family(2, "chunksync_dependency_tokens")  # no sum of budgets
    every = family(100, "chunksync_dependency_slots_in_use")
    assert len(every) == 5 and sum(every.values()) == sum(slots.values())


def gate_for(app: App, name: str, seconds: float) -> None:
    """Put a dependency in probing since `seconds` ago, as a worker's faults would."""
    now = app.manager.now()
    app.backend.execute(
        "deps_save",
        {
            "name": name,
            "tokens": 1.0,
            "capacity": 10.0,
            "flow": "probing",
            "next_probe_at": now + 60,
            "probe_interval_s": 60.0,
            "gated_since": now - seconds,
            "tat": 0.0,
            "probes": 0,
            "cap_waits": 0,
            "rate_waits": 0,
            "gate_waits": 0,
        },
    )


def test_the_dependency_gated_alert_fires_once_and_resolves_when_calls_flow(app: App) -> None:
    cfg = alerts.AlertConfig(HealthThresholds(dependency_gated_s=300.0))
    app.ensure_dependency("job://api.example.com")
    gate_for(app, "job://api.example.com", 100.0)
    assert [e for e in alerts.evaluate(app.manager, cfg) if e.rule == "dependency_gated"] == []
    gate_for(app, "job://api.example.com", 600.0)
    [fired] = [e for e in alerts.evaluate(app.manager, cfg) if e.rule == "dependency_gated"]
    assert fired.key == "dependency_gated:job://api.example.com" and fired.state == "firing"
    assert fired.severity == "critical"
    assert "job://api.example.com" in fired.message and "probing for 10m 0" in fired.message
    assert [e for e in alerts.evaluate(app.manager, cfg) if e.rule == "dependency_gated"] == []
    operate.set_flow(app.deps, "job://api.example.com", stopped=False, reason="recovered")
    [resolved] = [e for e in alerts.evaluate(app.manager, cfg) if e.rule == "dependency_gated"]
    assert resolved.state == "resolved"


def test_a_dependency_closed_by_an_operator_is_a_warning_past_the_threshold(app: App) -> None:
    app.ensure_dependency("api")
    operate.set_flow(app.deps, "api", stopped=True, reason="maintenance")
    [dep] = view.listed(app.backend)
    assert view.gated_for(dep, app.manager.now()) is not None
    cfg = alerts.AlertConfig(HealthThresholds(dependency_gated_s=0.0))
    deadline = time.monotonic() + 5.0
    found = alerts.gated_dependencies(app.manager, cfg.thresholds)
    while not found and time.monotonic() < deadline:  # gated for exactly 0 s is not past 0 s
        found = alerts.gated_dependencies(app.manager, cfg.thresholds)
    [condition] = found
    assert condition.severity == "warning" and "api has been stopped for" in condition.message


def test_the_shown_shape_is_stable(app: App) -> None:
    app.dependency("api", connections=4, rate="10/s", burst=5)
    operate.set_flow(app.deps, "api", stopped=True, reason="x")
    [dep] = app.deps.all()
    shown = view.shown(dep, app.manager.now())
    assert set(shown) == {
        "name",
        "flow",
        "tokens",
        "capacity",
        "slots_in_use",
        "connections",
        "rate",
        "rate_per_s",
        "burst",
        "waits",
        "probes",
        "active_queues",
        "gated_since",
        "gated_for_s",
        "next_probe_at",
        "chunks_moving_since",
    }
    assert (shown["flow"], shown["rate"], shown["rate_per_s"]) == ("stopped", "10/s", 10.0)
    assert shown["gated_since"].endswith("+00:00") and shown["gated_for_s"] >= 0
    assert shown["waits"] == {"connections": 0, "rate": 0, "gate": 0}


def test_a_dependency_name_never_holds_a_secret(app: App) -> None:
    with pytest.raises(ConfigurationError, match=r"holds a secret: name the account without"):
        app.dependency("imap://alice:hunter2@imap.example.com", connections=2)
    assert app.deps.all() == []
