"""`chunksync schedule` through the real CLI: add, list, run soon, remove; mistakes in one line."""

from __future__ import annotations

import json

from tests.acceptance.test_cli import one_error, run


def test_schedule_add_list_run_remove(sqlite_url: str) -> None:
    run("init", db=sqlite_url)
    added = run(
        "schedule", "add", "sync-often", "--cron", "*/15 * * * *", "--json", "--",
        "status", "--json", db=sqlite_url,
    )  # fmt: skip
    shown = json.loads(added.stdout)
    assert shown["command"] == ["status", "--json"] and shown["next_at"].endswith("+00:00")
    listed = json.loads(run("schedule", "list", "--json", db=sqlite_url).stdout)
    assert [s["name"] for s in listed] == ["sync-often"] and listed[0]["runs"] == 0
    assert "sync-often" in run("schedule", db=sqlite_url).stdout
    assert "due now" in run("schedule", "run", "sync-often", db=sqlite_url).stdout
    assert "removed" in run("schedule", "remove", "sync-often", db=sqlite_url).stdout
    assert json.loads(run("schedule", "list", "--json", db=sqlite_url).stdout) == []


def test_schedule_mistakes_are_one_sentence(sqlite_url: str) -> None:
    run("init", db=sqlite_url)
    bad = run("schedule", "add", "x", "--cron", "*/15 * *", "--", "status", db=sqlite_url, expect=1)
    assert "five fields" in one_error(bad)
    long = run("schedule", "add", "x", "--cron", "@hourly", "--", "worker", db=sqlite_url, expect=1)
    assert "cannot be scheduled" in one_error(long)
    args = ["schedule", "add", "x", "--cron", "@daily", "--", "--db", "x", "status"]
    opt = run(*args, db=sqlite_url, expect=1)
    assert "starts with the command's name" in one_error(opt)
    gone = run("schedule", "remove", "nope", db=sqlite_url, expect=1)
    assert "no schedule named 'nope'" in one_error(gone)
