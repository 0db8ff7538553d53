"""Dependencies in the dashboard, without a browser: the JSON API lists them as `chunksync deps
--json` does, closes, opens and limits them with the token (audited like the CLI's changes),
answers bad input with one sentence (400/404), refuses everything when read-only, and the page
and its forms show and change the same rows, never showing a secret a name holds."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from chunksync.app import App
from chunksync.deps import operate
from chunksync.deps.model import Limits
from tests.acceptance.test_cli import run
from tests.acceptance.web_server import TOKEN, serve

pytestmark = pytest.mark.timeout(60)

API = "job://api.example.com"
IMAP = "imap://alice@imap.gmail.com"
SECRET = "hunter2-s3cret"
WITH_SECRET = f"imap://bob:{SECRET}@imap.example.com"
BEARER = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def fleet(sqlite_url: str) -> Iterator[tuple[App, str]]:
    """A queue leaning on API (3 connections), a declared IMAP account, and a name with a
    password in it; the dashboard serving them with the operator token."""
    with App(sqlite_url) as app:
        app.handler("job")(lambda ctx: None)
        app.dependency(API, connections=3)
        queue = app.create_queue(API, [{}] * 2)
        app.deps.name_queue(queue.id, API)
        app.dependency(IMAP, rate="250/s", burst=50)
        # App.dependency refuses a name that holds a secret; a row made some other way (an
        # older chunksync, a hand-written INSERT) must still never show it: defence in depth.
        operate.declare_new(app.backend, WITH_SECRET, Limits(connections=1))
        with serve(app) as base:
            yield app, base


def at(base: str, name: str, action: str) -> str:
    return f"{base}/api/dependencies/{quote(name, safe='')}/{action}"


def listed(base: str) -> dict[str, dict[str, Any]]:
    answer = httpx.get(f"{base}/api/dependencies")
    assert answer.status_code == 200
    return {d["name"]: d for d in answer.json()}


def test_the_list_is_the_shape_of_deps_json(fleet: tuple[App, str], sqlite_url: str) -> None:
    _, base = fleet
    api = listed(base)
    cli = {d["name"]: d for d in json.loads(run("deps", "--json", db=sqlite_url).stdout)}
    assert set(api) == set(cli) == {API, IMAP, "imap://bob:***@imap.example.com"}
    for name, dep in api.items():
        assert dep.keys() == cli[name].keys()
        assert dep == cli[name] | {"gated_for_s": dep["gated_for_s"]}
    assert (api[API]["connections"], api[API]["active_queues"], api[API]["flow"]) == (3, 1, "ok")
    assert (api[IMAP]["rate"], api[IMAP]["burst"]) == ("250/s", 50)


def test_close_open_and_limits_with_the_token(fleet: tuple[App, str]) -> None:
    app, base = fleet
    closed = httpx.post(at(base, API, "close"), headers=BEARER, json={"reason": "outage"})
    assert closed.status_code == 200, closed.text
    assert closed.json() == {"ok": True, "message": closed.json()["message"]}
    dep = listed(base)[API]
    assert dep["flow"] == "stopped" and str(dep["gated_since"]).endswith("+00:00")
    assert httpx.post(at(base, API, "open"), headers=BEARER).status_code == 200
    dep = listed(base)[API]
    assert (dep["flow"], dep["gated_since"], dep["tokens"]) == ("ok", None, dep["capacity"])

    limits = {"connections": 5, "rate": "200/s", "burst": 20}
    assert httpx.post(at(base, API, "limits"), headers=BEARER, json=limits).status_code == 200
    dep = listed(base)[API]
    assert (dep["connections"], dep["rate"], dep["burst"]) == (5, "200/s", 20)
    cleared = httpx.post(at(base, API, "limits"), headers=BEARER, json={"connections": None})
    assert cleared.status_code == 200
    dep = listed(base)[API]
    assert (dep["connections"], dep["rate"], dep["burst"]) == (None, "200/s", 20)

    log = operate.history(app.backend, API)
    assert [r["action"] for r in log] == ["deps_set", "deps_set", "deps_open", "deps_close"]
    assert log[-1]["reason"] == "outage (from the dashboard)"
    assert log[0]["reason"] == "limits from the dashboard"


@pytest.mark.parametrize(
    ("name", "action", "body", "status", "words"),
    [
        (API, "limits", {"rate": "fast"}, 400, "is not a rate"),
        (API, "limits", {"connections": 0}, 400, "at least 1"),
        (API, "limits", {"burst": "many"}, 400, "whole number"),
        (API, "limits", {"burst": 2.5}, 400, "whole number"),
        (API, "limits", {"colour": "red"}, 400, "unknown limit"),
        (API, "limits", {}, 400, "nothing to change"),
        (API, "limits", [1, 2], 400, "JSON object"),
        (API, "close", {"connections": 3}, 400, "takes no limits"),
        ("job://nowhere.example.com", "close", None, 404, "no dependency named"),
        (API, "explode", None, 404, "no action 'explode'"),
    ],
)
def test_bad_input_is_one_sentence(
    fleet: tuple[App, str], name: str, action: str, body: Any, status: int, words: str
) -> None:
    _, base = fleet
    before = listed(base)[API]
    answer = httpx.post(at(base, name, action), headers=BEARER, json=body)
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert words in error and "\n" not in error and "Traceback" not in error
    assert listed(base)[API] == before | {"gated_for_s": before["gated_for_s"]}


def test_a_body_that_is_not_json_is_refused(fleet: tuple[App, str]) -> None:
    _, base = fleet
    answer = httpx.post(at(base, API, "limits"), headers=BEARER, content=b"{rate: 5")
    assert answer.status_code == 400
    assert answer.json() == {"error": "the body must be a JSON object"}


def test_actions_need_the_token_and_read_only_refuses_them(sqlite_url: str) -> None:
    with App(sqlite_url) as app:
        app.dependency(API, connections=3)
        with serve(app) as base:
            assert httpx.post(at(base, API, "close")).status_code == 401
            wrong = {"Authorization": "Bearer wrong"}
            assert httpx.post(at(base, API, "close"), headers=wrong).status_code == 401
        with serve(app, token=None) as base:
            for action, body in (("close", None), ("open", None), ("limits", {"burst": 3})):
                answer = httpx.post(at(base, API, action), headers=BEARER, json=body)
                assert answer.status_code == 403, action
                assert answer.json() == {"error": "this dashboard is read-only"}
            assert "read-only" in httpx.get(f"{base}/dependencies").text
        [dep] = app.deps.all()
        assert (dep.state.flow.value, dep.limits.connections, dep.limits.burst) == ("ok", 3, None)
        assert operate.history(app.backend, API) == []


def signed_in(client: httpx.Client) -> str:
    """Sign in with the token; the CSRF token the dependencies page's forms carry."""
    assert client.post("/login", data={"token": TOKEN}).status_code == 303
    page = client.get("/dependencies").text
    marker = 'name="csrf" value="'
    start = page.index(marker) + len(marker)
    return page[start : page.index('"', start)]


def test_the_page_shows_every_row_and_its_forms_act(fleet: tuple[App, str]) -> None:
    app, base = fleet
    with httpx.Client(base_url=base) as client:
        for path in ("/dependencies", "/fragments/dependencies"):
            page = client.get(path)
            assert page.status_code == 200
            assert API in page.text and IMAP in page.text and "250/s" in page.text
            assert SECRET not in page.text and "imap://bob:***@imap.example.com" in page.text
        assert 'href="/dependencies"' in client.get("/").text
        assert "button" not in client.get("/fragments/dependencies").text  # not signed in

        csrf = signed_in(client)
        form = {"csrf": csrf, "kind": "dependency", "next": "/dependencies"}
        shown = "imap://bob:***@imap.example.com"  # the name as the page shows it
        done = client.post("/actions", data=form | {"target": shown, "action": "close"})
        assert done.status_code == 303 and "closed" in done.headers["location"]
        assert app.deps.get(WITH_SECRET).state.flow.value == "stopped"
        assert 'data-flow="stopped"' in client.get("/fragments/dependencies").text

        bad = form | {"target": API, "action": "limits", "rate": "fast"}
        answer = client.post("/actions", data=bad, follow_redirects=True)
        assert "refused: rate &#39;fast&#39; is not a rate" in answer.text
        good = form | {"target": API, "action": "limits", "rate": "200/s", "clear": "connections"}
        assert client.post("/actions", data=good).status_code == 303
        limits = app.deps.get(API).limits
        assert (limits.connections, str(limits.rate), limits.burst) == (None, "200/s", None)

        forged = client.post("/actions", data=form | {"csrf": "forged", "target": API})
        assert forged.status_code == 403
