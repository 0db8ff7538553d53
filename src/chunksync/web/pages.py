"""The HTML side of the dashboard: pages, the fragments they refresh in place, and the
browser's forms (sign in, sign out, operator actions).

Every page has a fragment at /fragments/<path> rendered from the same data, so a refresh
swaps in exactly what a reload would show. Our exceptions become the error page (web.errors).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from chunksync.exceptions import ChunksyncError
from chunksync.redact import redact
from chunksync.web import bulk, params, views
from chunksync.web.actions import act, form_limits
from chunksync.web.rendering import page
from chunksync.web.security import SESSION_COOKIE, same_origin
from chunksync.web.state import board as board_of
from chunksync.web.state import dashboard

_Context = Callable[[Request], dict[str, Any]]
TENANTS_READ = "a tenant's sign-in reads only: actions are the operator's"


def _overview(request: Request) -> dict[str, Any]:
    app = dashboard(request).app
    return {"data": views.overview(app), "charts_data": views.charts_data(app)}


def _queues(request: Request) -> dict[str, Any]:
    return params.queue_page(request)


def _chunks(request: Request) -> dict[str, Any]:
    filters = params.chunk_filters(request)
    found = params.chunk_page(request, filters)
    queues, typed = views.queue_choices(dashboard(request).app)
    here = {k: v for k, v in filters.items() if v}
    return {
        **found,
        "filters": filters,
        "queues": queues,
        "queue_typed": typed,
        "filter_query": urlencode(here),
    }


def _chunk(request: Request) -> dict[str, Any]:
    return {"detail": views.chunk_detail(dashboard(request).app, request.path_params["chunk_id"])}


def _dependencies(request: Request) -> dict[str, Any]:
    return views.dependencies_page(dashboard(request).app)


def _view(template: str, context: _Context) -> Callable[[Request], Response]:
    # A plain function: Starlette runs it in its thread pool, off the event loop, as the
    # database reads behind `context` block.
    def endpoint(request: Request) -> Response:
        return page(request, template, **context(request))

    return endpoint


def login_page(request: Request) -> Response:
    return page(request, "login.html")


async def login(request: Request) -> Response:
    """Trade the operator token for a session cookie; the token itself is never stored. An
    address with too many wrong tokens in a while is refused (429) before its token is read."""
    form = await request.form()
    guard = board_of(request).guard
    if not guard.enabled:
        return page(request, "login.html", 403, error="this dashboard is read-only")
    if not same_origin(request):
        return page(request, "login.html", 403, error="wrong token")
    wait = await run_in_threadpool(guard.retry_after, request)
    if wait is not None:
        answer = page(request, "login.html", 429, error=f"too many wrong tokens: wait {wait} s")
        answer.headers["Retry-After"] = str(wait)
        return answer
    given = str(form.get("token", ""))
    operator = guard.check_token(given)
    tenant = None if operator else await run_in_threadpool(guard.tenant_of, given)
    if not operator and tenant is None:
        await run_in_threadpool(guard.failed_sign_in, request)
        return page(request, "login.html", 403, error="wrong token")
    response = RedirectResponse("/", status_code=303)
    cookie = await run_in_threadpool(guard.new_session, request, tenant)
    guard.set_cookie(request, response, cookie)
    return response


async def logout(request: Request) -> Response:
    """Sign out: the session's row is deleted, so its cookie opens nothing any more."""
    form = await request.form()
    guard = board_of(request).guard
    if await run_in_threadpool(guard.form_ok, request, str(form.get("csrf", ""))):
        await run_in_threadpool(guard.end_session, request)
    response = RedirectResponse("/", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


async def form_action(request: Request) -> Response:
    """An action from a signed-in browser's form; the outcome comes back as a notice."""
    form = await request.form()
    board = board_of(request)
    if not board.guard.enabled:
        return page(request, "error.html", 403, message="this dashboard is read-only")
    if not await run_in_threadpool(board.guard.form_ok, request, str(form.get("csrf", ""))):
        return page(request, "error.html", 403, message="sign in with the token first")
    if await run_in_threadpool(board.guard.viewer_tenant, request) is not None:
        return page(request, "error.html", 403, message=TENANTS_READ)
    back = str(form.get("next", "/"))
    if not back.startswith("/") or back.startswith("//"):
        back = "/"  # only a path of ours: never an open redirect
    kind, target, action = (str(form.get(k, "")) for k in ("kind", "target", "action"))
    try:
        values: dict[str, Any] = {}
        if kind == "dependency" and action == "limits":
            values = form_limits(form, [str(v) for v in form.getlist("clear")])
        notice = await run_in_threadpool(act, board.app, kind, target, action, values)
    except ChunksyncError as exc:
        notice = f"refused: {redact(str(exc))}"
    sep = "&" if "?" in back else "?"
    return RedirectResponse(f"{back}{sep}{urlencode({'notice': notice})}", status_code=303)


async def bulk_action(request: Request) -> Response:
    """A bulk action from the chunk list: the first POST answers with a confirmation page
    (how many chunks it would touch), the second (confirm=1) does it, each chunk audited."""
    form = await request.form()
    board = board_of(request)
    if not board.guard.enabled:
        return page(request, "error.html", 403, message="this dashboard is read-only")
    if not await run_in_threadpool(board.guard.form_ok, request, str(form.get("csrf", ""))):
        return page(request, "error.html", 403, message="sign in with the token first")
    if await run_in_threadpool(board.guard.viewer_tenant, request) is not None:
        return page(request, "error.html", 403, message=TENANTS_READ)
    action = bulk.check_action(str(form.get("action", "")))
    scope = "matching" if form.get("scope") == "matching" else "selected"
    filters = params.chunk_filters(form)
    ids = [str(v) for v in form.getlist("ids")] if scope == "selected" else None

    def chosen() -> list[str]:
        query = params.chunk_query(request, filters) if scope == "matching" else None
        return bulk.targets(board.app, ids, query)

    chunk_ids = await run_in_threadpool(chosen)
    back = "/chunks?" + urlencode({k: v for k, v in filters.items() if v})
    if form.get("confirm") != "1":
        shown: dict[str, Any] = {"action": action, "scope": scope, "ids": ids or []}
        shown.update(count=len(chunk_ids), filters=filters, back=back)
        return page(request, "bulk_confirm.html", **shown)
    result = await run_in_threadpool(bulk.apply, board.app, action, chunk_ids)
    return RedirectResponse(f"{back}&{urlencode({'notice': result.message()})}", 303)


ROUTES = [
    Route("/", _view("overview.html", _overview)),
    Route("/fragments/overview", _view("_overview.html", _overview)),
    Route("/queues", _view("queues.html", _queues)),
    Route("/fragments/queues", _view("_queues.html", _queues)),
    Route("/chunks", _view("chunks.html", _chunks)),
    Route("/fragments/chunks", _view("_chunks.html", _chunks)),
    Route("/chunks/{chunk_id}", _view("chunk.html", _chunk)),
    Route("/fragments/chunks/{chunk_id}", _view("_chunk.html", _chunk)),
    Route("/dependencies", _view("dependencies.html", _dependencies)),
    Route("/fragments/dependencies", _view("_dependencies.html", _dependencies)),
    Route("/login", login_page),
    Route("/login", login, methods=["POST"]),
    Route("/logout", logout, methods=["POST"]),
    Route("/actions", form_action, methods=["POST"]),
    Route("/bulk", bulk_action, methods=["POST"]),
]
