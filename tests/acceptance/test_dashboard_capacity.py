"""The dashboard's capacity page and its JSON, served on loopback from a real app."""

from __future__ import annotations

import httpx

from chunksync.app import App
from chunksync.observe import capacity
from tests.acceptance.web_server import serve


def test_capacity_page_and_json(sqlite_url: str) -> None:
    with App(sqlite_url) as app:
        app.handler("job")(lambda ctx: None)
        q = app.create_queue("job://cap.example.com", [{}] * 3, name="pages")
        capacity.set_objectives(app.manager, q.id, 30.0, 3600.0)
        with serve(app) as base:
            data = httpx.get(f"{base}/api/capacity").json()
            html = httpx.get(f"{base}/capacity").text
            fragment = httpx.get(f"{base}/fragments/capacity").text
    assert {o["objective"] for o in data["objectives"]} == {"wait", "deadline"}
    [advice] = data["advice"]
    assert advice["subject"] == "queue pages" and advice["backlog"] == 3
    assert 'data-objective="queue pages:wait"' in html and 'data-advice="queue pages"' in html
    assert 'id="advice-table"' in fragment and "<html" not in fragment


def test_a_fleets_capacity_page_shows_the_changes_first_and_says_how_many_more(
    sqlite_url: str,
) -> None:
    """At 50,000 queues the page (and its fragment, polled every 2 s) was 15.8 MB of rows."""
    from chunksync.web.capacity import PAGE_ADVICE

    with App(sqlite_url) as app:
        app.handler("job")(lambda ctx: None)
        for n in range(PAGE_ADVICE + 5):
            app.create_queue("job://cap.example.com", [{}], name=f"q{n:02d}")
        with serve(app) as base:
            every = httpx.get(f"{base}/api/capacity").json()
            some = httpx.get(f"{base}/api/capacity", params={"limit": 3}).json()
            bad = httpx.get(f"{base}/api/capacity", params={"limit": 0})
            fragment = httpx.get(f"{base}/fragments/capacity").text
    assert len(every["advice"]) == every["advice_total"] == PAGE_ADVICE + 5
    assert some["advice"] == every["advice"][:3] and some["advice_total"] == PAGE_ADVICE + 5
    assert bad.status_code == 400 and "limit must be between 1 and" in bad.text
    assert fragment.count("data-advice=") == PAGE_ADVICE
    assert f"{PAGE_ADVICE} of {PAGE_ADVICE + 5} queues' advice shown" in fragment
