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
