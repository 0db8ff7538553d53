"""The dashboard's capacity page: each queue's objectives (budget left, burn rates, alerts),
its scaling advice and any degradation, from chunksync.observe.capacity; with its live
fragment and its JSON twin (/api/capacity). A page module of its own, so the rest of the
dashboard does not change for it."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from chunksync.observe import capacity
from chunksync.web import params
from chunksync.web.rendering import page
from chunksync.web.state import dashboard

PAGE_ADVICE = 50  # rows of advice a page shows (the page's fragment is polled every 2 s)
MAX_ADVICE = 10_000_000


def capacity_data(request: Request, limit: int | None) -> dict[str, Any]:
    """Objectives, the advice asking for a change first (at most `limit` of it; its total and
    how much of it is ok beside), and the degradations' evidence."""
    app = dashboard(request).app
    advice = capacity.by_urgency(
        capacity.scale_advice(app.manager, worker_timeout_s=app.settings.health.worker_timeout_s)
    )
    return {
        "objectives": [s.as_dict() for s in capacity.slo_report(app.manager)],
        "advice": [a.as_dict() for a in advice[:limit]],
        "advice_total": len(advice),
        "advice_ok": sum(a.verdict == "ok" for a in advice),
        "evidence": [e.as_dict() for e in capacity.degradations(app.manager)],
    }


def _page(template: str) -> Any:
    def endpoint(request: Request) -> Response:  # plain: Starlette runs it off the event loop
        # At 50,000 queues every row of advice was 15.8 MB of HTML, 3.5 s a render, each poll.
        return page(request, template, capacity=capacity_data(request, PAGE_ADVICE))

    return endpoint


def capacity_json(request: Request) -> Response:
    """Every queue's advice, the change first; `?limit=` the first so many."""
    limit = params.optional_int(request, "limit", 1, MAX_ADVICE)
    return JSONResponse(capacity_data(request, limit))


ROUTES = [
    Route("/capacity", _page("capacity.html")),
    Route("/fragments/capacity", _page("_capacity.html")),
    Route("/api/capacity", capacity_json),
]
