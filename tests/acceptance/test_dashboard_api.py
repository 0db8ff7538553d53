"""The JSON API against its OpenAPI document: the document validates, and schemathesis
exercises every operation against the real app served on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from openapi_spec_validator import validate

from chunksync.app import App
from chunksync.web.openapi import openapi_document
from tests.acceptance.web_server import TOKEN, serve

pytestmark = pytest.mark.timeout(120)


def test_the_openapi_document_validates() -> None:
    validate(openapi_document())  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = f"sqlite:///{tmp_path_factory.mktemp('api') / 'chunksync.db'}"
    with App(url) as app:
        app.handler("job")(lambda ctx: None)
        app.create_queue("job://api.example.com", [{"n": n} for n in range(3)], name="pages")
        app.dependency("imap://alice@imap.gmail.com", rate="250/s", burst=50)
        with serve(app) as base:
            yield base


def test_api_conforms_to_its_document(base_url: str) -> None:
    """Every operation, with generated parameters, answers as the document says."""
    api = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    tested = 0
    for result in api.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(
            max_examples=15, deadline=None, database=None, suppress_health_check=list(HealthCheck)
        )
        def check(case: Any) -> None:
            case.call_and_validate(headers={"Authorization": f"Bearer {TOKEN}"})

        check()
        tested += 1
    assert tested == 15


def test_reads_are_open_and_actions_need_the_token(base_url: str) -> None:
    queues = httpx.get(f"{base_url}/api/queues").json()
    [queue] = [q for q in queues if q["name"] == "pages"]
    target = f"{base_url}/api/queues/{queue['queue_id']}/pause"
    assert httpx.post(target).status_code == 401
    assert httpx.post(target, headers={"Authorization": "Bearer wrong"}).status_code == 401
    ok = httpx.post(target, headers={"Authorization": f"Bearer {TOKEN}"})
    assert ok.status_code in (200, 409)  # 409 when schemathesis paused it already
    assert httpx.get(f"{base_url}/api/chunks", params={"status": "nope"}).status_code == 400


def test_queues_come_a_page_at_a_time(tmp_path: Any) -> None:
    """Past a page of queues, the API pages them (X-Total-Count says how many), the overview
    lists the newest page and says how many more there are, and /queues pages the rest."""
    with App(f"sqlite:///{tmp_path / 'many.db'}") as app:
        app.handler("job")(lambda ctx: None)
        for n in range(105):
            app.create_queue(f"job://api.example.com/{n}", [{"n": n}], name=f"q{n:03d}")
        with serve(app) as base:
            page = httpx.get(f"{base}/api/queues", params={"limit": 10, "offset": 100})
            assert page.headers["X-Total-Count"] == "105" and len(page.json()) == 5
            assert all(q["totals"]["pending"] == 1 for q in page.json())
            whole = httpx.get(f"{base}/api/queues").json()  # the default page holds them all
            assert sorted(q["name"] for q in whole) == [f"q{n:03d}" for n in range(105)]
            assert [q["name"] for q in whole[100:]] == [q["name"] for q in page.json()]
            overview = httpx.get(f"{base}/api/overview").json()
            assert len(overview["queues"]) == 100 and overview["queues_total"] == 105
            assert [q["name"] for q in overview["queues"]] == [q["name"] for q in whole[:100]]
            html = httpx.get(f"{base}/").text
            assert 'id="queues-more"' in html and "100 newest of 105 queues" in html
            second = httpx.get(f"{base}/queues", params={"page": 2}).text
            assert "101–105 of 105 queue(s)" in second
            assert all(q["name"] in second for q in page.json())
