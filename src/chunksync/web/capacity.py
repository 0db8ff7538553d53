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
from chunksync.web.rendering import page
from chunksync.web.state import dashboard


def capacity_data(request: Request) -> dict[str, Any]:
    app = dashboard(request).app
    return {
        "objectives": [s.as_dict() for s in capacity.slo_report(app.manager)],
        "advice": [
            a.as_dict()
            for a in capacity.scale_advice(
                app.manager, worker_timeout_s=app.settings.health.worker_timeout_s
            )
        ],
        "evidence": [e.as_dict() for e in capacity.degradations(app.manager)],
    }


def _page(template: str) -> Any:
    def endpoint(request: Request) -> Response:  # plain: Starlette runs it off the event loop
        return page(request, template, capacity=capacity_data(request))

    return endpoint


def capacity_json(request: Request) -> Response:
    return JSONResponse(capacity_data(request))


ROUTES = [
    Route("/capacity", _page("capacity.html")),
    Route("/fragments/capacity", _page("_capacity.html")),
    Route("/api/capacity", capacity_json),
]
