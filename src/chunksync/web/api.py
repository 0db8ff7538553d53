"""The JSON API (described by /openapi.json) and the Prometheus metrics.

Reads need nothing; actions need the operator token as a bearer token. Endpoints are plain
functions, run by Starlette in its thread pool; our exceptions become JSON errors (web.errors).
"""

from __future__ import annotations

import json
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from chunksync.exceptions import ConfigurationError
from chunksync.observe import metrics
from chunksync.web import bulk, params, views
from chunksync.web.actions import act
from chunksync.web.errors import error_json
from chunksync.web.openapi import openapi_document
from chunksync.web.security import bearer
from chunksync.web.state import board as board_of
from chunksync.web.state import dashboard


def overview(request: Request) -> Response:
    return JSONResponse(views.overview(dashboard(request).app))


def queues(request: Request) -> Response:
    """A page of the queues (`limit`, `offset`), newest first; X-Total-Count says how many."""
    found, total = params.queue_list(request)
    return JSONResponse(found, headers={"X-Total-Count": str(total)})


def charts(request: Request) -> Response:
    return JSONResponse(views.charts_data(dashboard(request).app))


def chunks(request: Request) -> Response:
    """A page of the matching chunks; X-Total-Count says how many match in all."""
    found, total = params.chunk_list(request, params.chunk_filters(request))
    return JSONResponse(found, headers={"x-total-count": str(total)})


def chunk(request: Request) -> Response:
    return JSONResponse(views.chunk_detail(dashboard(request).app, request.path_params["chunk_id"]))


def chunk_action(request: Request) -> Response:
    return _action(request, "chunk")


def queue_action(request: Request) -> Response:
    return _action(request, "queue")


def dependencies(request: Request) -> Response:
    return JSONResponse(views.dependencies(dashboard(request).app))


async def dependency_action(request: Request) -> Response:
    """open, close or limits of the dependency named in the path (percent-encoded: the name
    holds '://' and '@'; the route's `path` converter takes it whole, slashes and all). The
    body, when given, is a JSON object: the limits to change and an optional reason."""
    refused = _refused(request)
    if refused is not None:
        return refused
    values = await _body(request)
    name, action = request.path_params["name"], request.path_params["action"]
    board = dashboard(request)
    message = await run_in_threadpool(act, board.app, "dependency", name, action, values)
    return JSONResponse({"ok": True, "message": message})


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        found = json.loads(raw)
    except (ValueError, RecursionError):
        raise ConfigurationError("the body must be a JSON object") from None
    if not isinstance(found, dict):
        raise ConfigurationError("the body must be a JSON object")
    return found


async def chunks_bulk(request: Request) -> Response:
    """retry, cancel or release the chunks `ids` names, or every chunk `filter` matches (the
    list's parameters: q, status, category, queue, tenant). Without `"confirm": true` nothing
    is done: the answer says how many chunks it would touch."""
    refused = _refused(request)
    if refused is not None:
        return refused
    body = await _body(request)
    action = bulk.check_action(request.path_params["action"])
    ids, given = body.get("ids"), body.get("filter")
    if ids is not None and (not isinstance(ids, list) or not all(isinstance(i, str) for i in ids)):
        raise ConfigurationError("ids must be a list of chunk ids")
    if given is not None and not isinstance(given, dict):
        raise ConfigurationError("filter must be an object: q, status, category, queue, tenant")
    if (ids is None) == (given is None):
        raise ConfigurationError("give either ids or filter")
    confirmed = body.get("confirm") is True

    def run() -> dict[str, Any]:
        query = None if given is None else params.chunk_query(request, params.chunk_filters(given))
        chosen = bulk.targets(dashboard(request).app, ids, query)
        if not confirmed:
            return bulk.BulkResult(action, len(chosen)).as_dict(confirmed=False)
        return bulk.apply(dashboard(request).app, action, chosen).as_dict(confirmed=True)

    return JSONResponse(await run_in_threadpool(run))


def _refused(request: Request) -> Response | None:
    """Why an action is refused (read-only, no or a wrong bearer token), or None."""
    board = board_of(request)  # who asks is read from the header here, never refused early
    if not board.guard.enabled:
        return error_json("this dashboard is read-only", 403)
    if not board.guard.bearer_ok(request):
        if board.guard.tenant_of(bearer(request)) is not None:
            return error_json("a tenant's token reads only: actions are the operator's", 403)
        given = request.headers.get("authorization", "").strip()
        said = "the bearer token is wrong" if given else "a bearer token is required"
        return error_json(said, 401, {"www-authenticate": "Bearer"})
    return None


def _action(request: Request, kind: str) -> Response:
    refused = _refused(request)
    if refused is not None:
        return refused
    target, action = request.path_params["target"], request.path_params["action"]
    message = act(dashboard(request).app, kind, target, action)
    return JSONResponse({"ok": True, "message": message})


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
    Route("/api/chunks/bulk/{action}", chunks_bulk, methods=["POST"]),
    Route("/api/chunks/{chunk_id}", chunk),
    Route("/api/chunks/{target}/{action}", chunk_action, methods=["POST"]),
    Route("/api/queues/{target}/{action}", queue_action, methods=["POST"]),
    Route("/api/dependencies", dependencies),
    Route("/api/dependencies/{name:path}/{action}", dependency_action, methods=["POST"]),
    Route("/openapi.json", openapi),
    Route("/metrics", metrics_text),
]
