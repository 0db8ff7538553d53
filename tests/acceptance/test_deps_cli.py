"""`chunksync deps` through the real command line: list, set, close, open, the audit log, the
health section, `worker --deps FILE`, and one clear sentence for each mistake."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chunksync.app import App
from tests.acceptance.test_cli import one_error, run

pytestmark = pytest.mark.timeout(120)
API = "job://api.example.com"


@pytest.fixture
def fleet_db(db_url: str) -> str:
    """A database (each backend) with one queue leaning on API (limited) and a declared IMAP
    account."""
    with App(db_url) as app:
        app.handler("job")(lambda ctx: None)
        app.dependency(API, connections=3)
        q = app.create_queue(API, [{}] * 2)
        app.deps.name_queue(q.id, API)
        app.dependency("imap://alice@imap.gmail.com", rate="250/s", burst=50)
    return db_url


def listed(db: str) -> dict[str, dict[str, object]]:
    return {d["name"]: d for d in json.loads(run("deps", "--json", db=db).stdout)}


def test_list_set_close_open_and_the_audit_log(fleet_db: str) -> None:
    out = run("deps", db=fleet_db).stdout
    assert "job://api" in out and "250/s burst 50" in out and "0/3" in out  # long names fold
    api = listed(fleet_db)[API]
    assert (api["flow"], api["connections"], api["rate"], api["active_queues"]) == (
        "ok",
        3,
        None,
        1,
    )
    said = run("deps", "set", API, "--rate", "10000/10m", "--burst", "20", db=fleet_db).stdout
    assert "rate 10000/10m" in said
    assert "mov" not in said  # limited before and after: its chunks keep their claim group
    run("deps", "set", API, "--clear-connections", "--reason", "provider lifted it", db=fleet_db)
    api = listed(fleet_db)[API]
    assert (api["connections"], api["rate"], api["burst"]) == (None, "10000/10m", 20)
    run("deps", "close", API, "--reason", "provider outage", db=fleet_db)
    api = listed(fleet_db)[API]
    assert api["flow"] == "stopped" and str(api["gated_since"]).endswith("+00:00")
    assert "stopped" in run("health", db=fleet_db).stdout
    health = json.loads(run("health", "--json", db=fleet_db).stdout)
    assert {d["name"]: d["flow"] for d in health["dependencies"]}[API] == "stopped"
    run("deps", "open", API, db=fleet_db)
    api = listed(fleet_db)[API]
    assert (api["flow"], api["gated_since"], api["tokens"]) == ("ok", None, api["capacity"])
    log = json.loads(run("deps", "log", API, "--json", db=fleet_db).stdout)
    assert [e["action"] for e in log] == ["deps_open", "deps_close", "deps_set", "deps_set"]
    assert log[1]["reason"] == "provider outage" and log[1]["actor"] == "operator"
    assert log[2]["details"]["before"]["connections"] == 3
    assert log[2]["details"]["after"]["connections"] is None
    assert log[0]["at"].endswith("+00:00")


def test_an_empty_list_says_how_dependencies_come(sqlite_url: str) -> None:
    run("init", db=sqlite_url)
    assert "no dependencies yet" in run("deps", db=sqlite_url).stdout
    assert json.loads(run("deps", "--json", db=sqlite_url).stdout) == []


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["set", API, "--rate", "fast"], "rate 'fast' is not a rate"),
        (["set", API, "--connections", "-1"], "must be a whole number of at least 1, not -1"),
        (["set", API, "--connections", "0"], "must be a whole number of at least 1, not 0"),
        (["set", API, "--burst", "0"], "must be a whole number of at least 1, not 0"),
        (["set", API, "--rate", "1/s", "--clear-rate"], "not both"),
        (["set", API], "nothing to change"),
        (["set", "job://nope", "--connections", "2"], "no dependency named 'job://nope'"),
        (["close", "job://nope"], "known: imap://alice@imap.gmail.com, job://api.example.com"),
        (["open", "job://nope"], "when a queue leans on it or when it is declared"),
    ],
)
def test_mistakes_are_one_sentence_and_change_nothing(
    fleet_db: str, args: list[str], complaint: str
) -> None:
    assert complaint in one_error(run("deps", *args, db=fleet_db, expect=1))
    api = listed(fleet_db)[API]
    assert (api["connections"], api["rate"], api["flow"]) == (3, None, "ok")
    assert json.loads(run("deps", "log", "--json", db=fleet_db).stdout) == []


def test_worker_declares_dependencies_from_a_toml_file(sqlite_url: str, tmp_path: Path) -> None:
    deps = tmp_path / "deps.toml"
    deps.write_text(
        '[dependencies."imap.gmail.com"]\nconnections = 15\nrate = "250/s"\nburst = 50\n\n'
        '[dependencies."imap://*@imap.gmail.com"]\nconnections = 10\n',
        encoding="utf-8",
    )
    run("init", db=sqlite_url)
    run("worker", "--until-done", "--deps", str(deps), db=sqlite_url)
    assert listed(sqlite_url)["imap.gmail.com"]["connections"] == 15
    assert set(listed(sqlite_url)) == {"imap.gmail.com"}  # a pattern makes no row by itself


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ('[dependencies."api"]\nconnection = 3\n', "unknown key(s) connection"),
        ('[dependencies."api"]\nrate = "lots"\n', "rate 'lots' is not a rate"),
        ('[dependencies."api"]\nconnections = -2\n', "at least 1, not -2"),
        ("[dependencies\n", "is not valid TOML"),
    ],
)
def test_a_bad_dependencies_file_is_one_sentence(
    sqlite_url: str, tmp_path: Path, text: str, complaint: str
) -> None:
    deps = tmp_path / "deps.toml"
    deps.write_text(text, encoding="utf-8")
    run("init", db=sqlite_url)
    proc = run("worker", "--until-done", "--deps", str(deps), db=sqlite_url, expect=1)
    assert complaint in one_error(proc)


def test_a_missing_dependencies_file_is_one_sentence(sqlite_url: str, tmp_path: Path) -> None:
    run("init", db=sqlite_url)
    proc = run("worker", "--deps", str(tmp_path / "none.toml"), db=sqlite_url, expect=1)
    assert "does not exist" in one_error(proc)
