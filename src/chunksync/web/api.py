"""The JSON API (described by /openapi.json) and the Prometheus metrics.

Reads need nothing; actions need the operator token as a bearer token. Endpoints are plain
functions, run by Starlette in its thread pool; our exceptions become JSON errors (web.errors).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from chunksync.observe import metrics
from chunksync.web import params, views
from chunksync.web.actions import act
from chunksync.web.errors import error_json
from chunksync.web.openapi import openapi_document
from chunksync.web.state import dashboard


def overview(request: Request) -> Response:
    return JSONResponse(views.overview(dashboard(request).app))


def queues(request: Request) -> Response:
    return JSONResponse(views.queues_data(dashboard(request).app))


def charts(request: Request) -> Response:
    return JSONResponse(views.charts_data(dashboard(request).app))


def chunks(request: Request) -> Response:
    return JSONResponse(params.chunk_list(request, params.chunk_filters(request)))


def chunk(request: Request) -> Response:
    return JSONResponse(views.chunk_detail(dashboard(request).app, request.path_params["chunk_id"]))


def chunk_action(request: Request) -> Response:
    return _action(request, "chunk")


def queue_action(request: Request) -> Response:
    return _action(request, "queue")


def _action(request: Request, kind: str) -> Response:
    board = dashboard(request)
    if not board.guard.enabled:
        return error_json("this dashboard is read-only", 403)
    if not board.guard.bearer_ok(request):
        return error_json("a bearer token is required", 401, {"www-authenticate": "Bearer"})
    target, action = request.path_params["target"], request.path_params["action"]
    return JSONResponse({"ok": True, "message": act(board.app.manager, kind, target, action)})


def metrics_text(request: Request) -> Response:
    body, content_type = metrics.render(dashboard(request).app.manager)
    return Response(body, media_type=content_type)


def openapi(request: Request) -> Response:
    return JSONResponse(openapi_document())


ROUTES = [
    Route("/api/overview", overview),
    Route("/api/queues", queues),
    Route("/api/charts", charts),
    Route("/api/chunks", chunks),
    Route("/api/chunks/{chunk_id}", chunk),
    Route("/api/chunks/{target}/{action}", chunk_action, methods=["POST"]),
    Route("/api/queues/{target}/{action}", queue_action, methods=["POST"]),
    Route("/openapi.json", openapi),
    Route("/metrics", metrics_text),
]
