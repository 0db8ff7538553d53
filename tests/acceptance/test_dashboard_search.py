"""The dashboard's chunk search, filters, pages, bulk actions and probes, through its real HTTP
API and pages (served by uvicorn)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from chunksync.app import App
from chunksync.models import ChunkStatus
from tests.acceptance.web_server import TOKEN, serve

AUTH = {"Authorization": f"Bearer {TOKEN}"}
SECRET = "hunter22-not-shown"


@pytest.fixture
def site(sqlite_app: App) -> Iterator[tuple[App, str]]:
    app = sqlite_app
    app.handler("job")(lambda ctx: None)
    payloads = [
        {"n": n, "city": "Paris" if n % 3 == 0 else "Oslo", "password": SECRET, "pct": "50%"}
        for n in range(120)
    ]
    app.create_queue("job://a.example.com", payloads, name="pages", tenant="acme")
    app.create_queue("job://b.example.com", [{"n": n} for n in range(5)], name="other", tenant="t2")
    with serve(app) as base:
        yield app, base


def chunks(base: str, **params: Any) -> tuple[list[dict[str, Any]], int]:
    r = httpx.get(f"{base}/api/chunks", params=params)
    assert r.status_code == 200, r.text
    return r.json(), int(r.headers["x-total-count"])


def test_search_filters_and_pages(site: tuple[App, str]) -> None:
    _, base = site
    found, total = chunks(base, q="PARIS", limit=1000)
    assert total == len(found) == 40
    assert {c["payload"]["city"] for c in found} == {"Paris"}
    assert {c["payload"]["password"] for c in found} == {"***"}  # redacted like everything else
    one = found[7]["id"]
    # A chunk id starts with the time it was made (chunksync.ids): the chunks of one enqueue
    # share their first 13 characters, and the rest is each one's own.
    assert len(chunks(base, q=one[:8], limit=1000)[0]) > 1
    assert [c["id"] for c in chunks(base, q=one[:23])[0]] == [one]
    assert [c["id"] for c in chunks(base, q=one[-12:].upper())[0]] == [one]
    assert chunks(base, tenant="t2")[1] == 5
    assert chunks(base, q="50%")[1] == 120 and chunks(base, q="5_%")[1] == 0  # literal % and _
    first, total = chunks(base, tenant="acme", limit=50, offset=100)
    assert total == 120 and [c["seq"] for c in first] == list(range(101, 121))
    detail = httpx.get(f"{base}/api/chunks/{one}").json()
    assert '"city": "Paris"' in detail["payload"] and SECRET not in detail["payload"]


def test_the_page_lists_a_search_a_page_at_a_time(site: tuple[App, str]) -> None:
    _, base = site
    html = httpx.get(f"{base}/chunks", params={"q": "oslo"}).text
    assert "1–50 of 80 chunk(s)" in html and "page 1 of 2" in html and 'id="page-next"' in html
    assert SECRET not in html and "Oslo" in html
    second = httpx.get(f"{base}/chunks", params={"q": "oslo", "page": "2"}).text
    assert "51–80 of 80 chunk(s)" in second and 'id="page-prev"' in second
    assert "No chunk matches" in httpx.get(f"{base}/chunks", params={"q": "nowhere"}).text


def test_bulk_actions_ask_first_and_audit_each_chunk(site: tuple[App, str]) -> None:
    app, base = site
    url = f"{base}/api/chunks/bulk/cancel"
    body: dict[str, Any] = {"filter": {"q": "paris", "tenant": "acme"}}
    assert httpx.post(url, json=body).status_code == 401
    preview = httpx.post(url, json=body, headers=AUTH).json()
    assert (preview["confirmed"], preview["matched"], preview["done"]) == (False, 40, 0)
    assert chunks(base, status="cancelled")[1] == 0  # nothing done without confirm
    done = httpx.post(url, json={**body, "confirm": True}, headers=AUTH).json()
    assert (done["matched"], done["done"], done["skipped"]) == (40, 40, 0)
    cancelled, n = chunks(base, status="cancelled", limit=1000)
    assert n == 40 and all(c["payload"]["city"] == "Paris" for c in cancelled)
    for c in cancelled[:5]:
        [entry] = app.manager.list_audit(chunk_id=c["id"])
        assert (entry.action, entry.actor) == ("cancel_chunk", "dashboard")
    # A selection: the cancelled ones cannot be cancelled again, and are counted as skipped.
    ids = [cancelled[0]["id"], chunks(base, q="oslo")[0][0]["id"]]
    again = httpx.post(url, json={"ids": ids, "confirm": True}, headers=AUTH).json()
    assert (again["done"], again["skipped"]) == (1, 1)
    assert app.manager.get_chunk(ids[1]).status is ChunkStatus.CANCELLED
    bad = httpx.post(url, json={"ids": ids, "filter": {}}, headers=AUTH)
    assert bad.status_code == 400 and "either ids or filter" in bad.json()["error"]
    assert httpx.post(f"{base}/api/chunks/bulk/explode", json=body, headers=AUTH).status_code == 404


def test_healthz_and_readyz(site: tuple[App, str]) -> None:
    _, base = site
    assert httpx.get(f"{base}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{base}/readyz")
    assert ready.status_code == 200 and ready.json() == {"status": "ready"}


def test_readyz_says_unavailable_when_the_database_is_gone(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path / 'gone.db'}"
    with App(url) as app, serve(app) as base:
        (tmp_path / "gone.db").unlink()
        (tmp_path / "gone.db").mkdir()  # not a database any more
        app.backend.close()
        r = httpx.get(f"{base}/readyz")
        assert r.status_code == 503 and r.json()["status"] == "unavailable"
        assert httpx.get(f"{base}/healthz").status_code == 200
