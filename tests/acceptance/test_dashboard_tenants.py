"""The dashboard and its API opened to one tenant, on a real PostgreSQL owned by a plain role
(row-level security applies): a tenant's token (made by the real CLI) reads that tenant's
queues, chunks and metrics and nothing of another's, may not act, and stops working when
revoked; a private dashboard shows nothing without a token; Chromium signed in as the tenant
sees only its own queues."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from chunksync.app import App
from tests.acceptance.test_cli import run
from tests.acceptance.test_dashboard_browser import browser, wait_for
from tests.acceptance.web_server import TOKEN, serve

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(120)]
__all__ = ["browser"]  # the Chromium fixture, shared


@pytest.fixture
def two_tenants(pg_owned: tuple[str, str]) -> Iterator[tuple[App, dict[str, str], str]]:
    """Tenants A and B with a queue each, B's token, and the dashboard private."""
    url, _ = pg_owned
    with App(url) as app:
        app.handler("job")(lambda ctx: 1)
        a = app.create_queue("job://a", [{"n": i} for i in range(4)], name="mail-a", tenant="A")
        b = app.create_queue("job://b", [{"n": i} for i in range(2)], name="mail-b", tenant="B")
        made = run("tenants", "token", "B", db=url)
        token = made.stdout.strip()
        assert token.startswith("cst_") and "shown once" in made.stderr
        with serve(app, private=True) as base:
            yield app, {"A": a.id, "B": b.id, "base": base, "url": url}, token


def _get(base: str, path: str, token: str | None = None) -> httpx.Response:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return httpx.get(base + path, headers=headers, timeout=10)


def test_a_tenants_token_reads_its_own_and_nothing_else(
    two_tenants: tuple[App, dict[str, str], str],
) -> None:
    app, ids, token = two_tenants
    base = ids["base"]
    queues = _get(base, "/api/queues", token).json()
    assert [q["name"] for q in queues] == ["mail-b"], queues
    chunks = _get(base, "/api/chunks", token).json()
    assert len(chunks) == 2 and {c["tenant"] for c in chunks} == {"B"}
    assert _get(base, "/api/chunks?tenant=A", token).json() == []
    a_chunk = app.manager.list_chunks(ids["A"])[0].id
    assert _get(base, f"/api/chunks/{a_chunk}", token).status_code == 404
    assert _get(base, f"/chunks/{a_chunk}", token).status_code == 404
    deps = [d["name"] for d in _get(base, "/api/dependencies", token).json()]
    assert deps and all("//b" in name for name in deps), deps  # not A's account
    metrics = _get(base, "/metrics", token).text
    assert ids["B"] in metrics and ids["A"] not in metrics and "mail-a" not in metrics
    page = _get(base, "/queues", token).text
    assert "mail-b" in page and "mail-a" not in page and "tenant B" in page
    everyone = _get(base, "/api/queues", TOKEN).json()
    assert sorted(q["name"] for q in everyone) == ["mail-a", "mail-b"]


def test_a_tenant_may_not_act_and_a_private_dashboard_shows_nothing_without_a_token(
    two_tenants: tuple[App, dict[str, str], str],
) -> None:
    app, ids, token = two_tenants
    base = ids["base"]
    b_chunk = app.manager.list_chunks(ids["B"])[0].id
    acted = httpx.post(
        f"{base}/api/chunks/{b_chunk}/cancel",
        headers={"authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert acted.status_code == 403 and "reads only" in acted.json()["error"]
    assert app.manager.get_chunk(b_chunk).status.value == "pending"
    for path in ("/api/queues", "/api/overview", "/metrics"):
        bare = _get(base, path)
        assert bare.status_code == 401 and bare.headers["www-authenticate"] == "Bearer", path
        assert ids["A"] not in bare.text
    assert _get(base, "/queues").status_code == 401
    assert _get(base, "/healthz").status_code == 200
    wrong = _get(base, "/api/queues", "cst_" + "x" * 43)
    assert wrong.status_code == 401 and wrong.json() == {"error": "the token is wrong"}
    said = run("tenants", "token", "B", "--revoke", db=ids["url"]).stdout
    assert "1 token(s) revoked" in said
    assert _get(base, "/api/queues", token).status_code == 401
    actions = [e.action for e in app.manager.list_audit()]
    assert {"tenant_token_add", "tenant_tokens_revoke"} <= set(actions)


def test_chromium_signed_in_as_a_tenant_sees_its_queues_only(
    two_tenants: tuple[App, dict[str, str], str], browser: Any
) -> None:
    _, ids, token = two_tenants
    base = ids["base"]
    browser.delete_all_cookies()
    browser.get(base + "/login")
    wait_for(browser, "#token").send_keys(token)
    browser.find_element("css selector", "#sign-in-button").click()
    wait_for(browser, "#health-h")
    browser.get(base + "/queues")
    assert wait_for(browser, "#viewer-tenant").text == "tenant B"
    shown = browser.page_source
    assert "mail-b" in shown and "mail-a" not in shown
    assert not browser.find_elements("css selector", "button.act-pause")  # reads only
    browser.get(base + "/chunks")
    wait_for(browser, "#viewer-tenant")
    assert ids["A"] not in browser.page_source and token not in browser.page_source


READS = [
    "/api/overview",
    "/api/queues",
    "/api/charts",
    "/api/chunks",
    "/api/chunks/{chunk}",
    "/api/dependencies",
    "/api/capacity",
    "/metrics",
    "/",
    "/queues",
    "/chunks",
    "/chunks/{chunk}",
    "/dependencies",
    "/capacity",
    "/fragments/overview",
    "/fragments/chunks",
]
ACTIONS = ["/api/chunks/{chunk}/{verb}", "/api/queues/{queue}/{verb}", "/api/chunks/bulk/{verb}"]


def test_generated_requests_with_bs_token_never_see_or_touch_as_rows(
    two_tenants: tuple[App, dict[str, str], str],
) -> None:
    """Hypothesis draws reads (any path, with filters, ids and names of either tenant or
    neither) and actions, sent with B's token: no answer holds any of A's ids or names, and
    A's chunks stay as they were."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    app, ids, token = two_tenants
    base = ids["base"]
    a_chunks = [c.id for c in app.manager.list_chunks(ids["A"])]
    b_chunks = [c.id for c in app.manager.list_chunks(ids["B"])]
    secrets = [ids["A"], *a_chunks, "mail-a", "job://a"]  # A's name and source: never asked
    names = st.sampled_from([*a_chunks, *b_chunks, ids["A"], ids["B"], "mail-b", "A", "B"])
    anything = st.one_of(names, st.text(max_size=12))
    params = st.dictionaries(
        st.sampled_from(["q", "status", "queue", "tenant", "limit", "offset", "page", "category"]),
        anything,
        max_size=4,
    )

    @given(
        path=st.sampled_from(READS),
        chunk=names,
        params=params,
        verb=st.sampled_from(["retry", "cancel", "release", "pause", "resume"]),
        action=st.sampled_from(ACTIONS),
        queue=names,
    )
    @settings(
        max_examples=150, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    def check(
        path: str, chunk: str, params: dict[str, str], verb: str, action: str, queue: str
    ) -> None:
        headers = {"authorization": f"Bearer {token}"}
        read = httpx.get(
            base + path.format(chunk=chunk), params=params, headers=headers, timeout=30
        )
        assert read.status_code in (200, 400, 404), (path, params, read.status_code)
        asked = str(read.request.url)
        # A page may show back what it was asked (a filter, "no chunk with id ..."): a leak is
        # what B did not send, or any of A's ids in a JSON answer that succeeded.
        leaked = [s for s in secrets if s in read.text and s not in asked]
        if read.status_code == 200 and "json" in read.headers.get("content-type", ""):
            leaked += [s for s in secrets if s in read.text]
        assert not leaked, (path, params, leaked)
        acted = httpx.post(
            base + action.format(chunk=chunk, queue=queue, verb=verb),
            headers=headers,
            json={"ids": [chunk], "confirm": True},
            timeout=30,
        )
        assert acted.status_code in (403, 404), (action, acted.status_code, acted.text)
        assert not [s for s in secrets if s in acted.text and s not in str(acted.request.url)]

    check()
    assert {c.status.value for c in app.manager.list_chunks(ids["A"])} == {"pending"}
