"""`chunksync sla`, `chunksync scale-advice` and `chunksync rollups` through the real CLI."""

from __future__ import annotations

import json

from chunksync.app import App
from tests.acceptance.test_cli import run


def test_objectives_advice_and_rollups_from_the_command_line(sqlite_url: str) -> None:
    run("demo", "--chunks", "30", "--seed", "3", "--crashes", "0", db=sqlite_url)
    with App(sqlite_url) as app:
        [queue] = app.manager.list_queues()
        app.handler("job")(lambda ctx: None)
        app.create_queue("job://later", [{}] * 3)  # an active queue to advise on
    assert "no objectives" in run("sla", db=sqlite_url).stdout
    run("sla", queue.id, "--wait", "30", "--deadline", "3600", db=sqlite_url)
    [status, deadline] = json.loads(run("sla", "--json", db=sqlite_url).stdout)
    assert (status["objective"], status["threshold_s"]) == ("deadline", 3600.0)
    assert deadline["objective"] == "wait" and deadline["events_1h"] == 30
    text = run("sla", "--tenants", db=sqlite_url).stdout
    assert "tenant default wait: 95% within 30s" in text
    [advice] = json.loads(run("scale-advice", "--json", db=sqlite_url).stdout)
    assert advice["backlog"] == 3 and advice["verdict"] in {"ok", "add", "remove", "do_not_add"}
    assert "queue job://later" in run("scale-advice", db=sqlite_url).stdout
    assert "folded" in run("rollups", "fold", db=sqlite_url).stdout
    assert "recomputed the rollups" in run("rollups", "rebuild", db=sqlite_url).stdout
    assert "removed 0 minute" in run("rollups", "trim", db=sqlite_url).stdout
    bad = run("sla", queue.id, "--wait", "-5", db=sqlite_url, expect=2)  # a usage error
    assert "negative" in bad.stderr and "Traceback" not in bad.stderr
