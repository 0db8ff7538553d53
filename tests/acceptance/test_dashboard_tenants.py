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
