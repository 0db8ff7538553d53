"""Routes of the dashboard: pages, live fragments, the JSON API, actions, metrics."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chunksync.app import App
from chunksync.exceptions import ChunksyncError, NotFound, StateError
from chunksync.models import ChunkStatus, ErrorCategory
from chunksync.observe import metrics
from chunksync.web import charts, views
from chunksync.web.openapi import openapi_document
from chunksync.web.security import SESSION_COOKIE, Guard

ACTOR = "dashboard"
POLL_MILLISECONDS = 2000
LOOPBACK_HOSTS = ["127.0.0.1", "localhost", "::1", "[::1]"]
SECURITY_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        b"object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
    (b"cache-control", b"no-store"),
]
CHUNK_ACTIONS = ("retry", "cancel", "release")
QUEUE_ACTIONS = ("pause", "resume", "cancel", "retry")


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, with_headers if scope["type"] == "http" else send)


def _environment() -> Environment:
    folder = str(resources.files("chunksync.web").joinpath("templates"))
    env = Environment(
        loader=FileSystemLoader(folder),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(pct=_pct, num=_num, age=_age, when=_when, mb=_mb)
    env.globals.update(charts=charts, categories=[c.value for c in ErrorCategory])
    env.globals.update(statuses=[s.value for s in ChunkStatus])
    return env


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _num(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(seconds)
    if s < 120:
        return f"{s} s"
    if s < 7200:
        return f"{s // 60} min"
    if s < 172800:
        return f"{s // 3600} h"
    return f"{s // 86400} d"


def _when(epoch: float | None) -> str:
    return "-" if epoch is None else time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(epoch))


def _mb(value: int | None) -> str:
    return "-" if value is None else f"{value / 1048576:.0f} MB"


def _enum(kind: type[ChunkStatus] | type[ErrorCategory], value: str | None) -> Any:
    if not value:
        return None
    try:
        return kind(value)
    except ValueError:
        raise ChunksyncError(f"unknown {kind.__name__} '{value}'") from None


def _limit(request: Request) -> int:
    raw = request.query_params.get("limit", str(views.CHUNK_LIST_LIMIT))
    try:
        value = int(raw)
    except ValueError:
        raise ChunksyncError("limit must be a whole number") from None
    if not 1 <= value <= 1000:
        raise ChunksyncError("limit must be between 1 and 1000")
    return value


def create_app(
    app: App,
    *,
    token: str | None = None,
    allowed_hosts: list[str] | None = None,
    poll_ms: int = POLL_MILLISECONDS,
) -> Starlette:
    """The dashboard for `app`. Without `token` it is read-only. `allowed_hosts` are the Host
    headers it answers (loopback names by default, against DNS rebinding)."""
    env = _environment()
    guard = Guard(token)

    def page(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        session = guard.session(request)
        context.update(
            request_path=request.url.path,
            query=request.url.query,
            read_only=not guard.enabled,
            signed_in=session is not None,
            csrf=guard.csrf_for(session) if session else "",
            poll_ms=poll_ms,
            notice=request.query_params.get("notice", ""),
        )
        return HTMLResponse(env.get_template(template).render(**context), status_code=status)

    def errors(
        fn: Callable[[Request], Response], *, as_json: bool
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            from starlette.concurrency import run_in_threadpool

            try:
                return await run_in_threadpool(fn, request)
            except ChunksyncError as exc:
                status = (
                    404
                    if isinstance(exc, NotFound)
                    else 409
                    if isinstance(exc, StateError)
                    else 400
                )
                if as_json:
                    return JSONResponse({"error": str(exc)}, status_code=status)
                return page(request, "error.html", status, message=str(exc))

        return endpoint

    # --- pages and their live fragments ---------------------------------------------------

    def overview_context(request: Request) -> dict[str, Any]:
        return {"data": views.overview(app), "charts_data": views.charts_data(app)}

    def chunks_context(request: Request) -> dict[str, Any]:
        q = request.query_params
        filters = {k: q.get(k, "") for k in ("status", "category", "queue")}
        found = views.chunk_list(
            app,
            status=_enum(ChunkStatus, filters["status"]),
            category=_enum(ErrorCategory, filters["category"]),
            queue=filters["queue"] or None,
            limit=_limit(request),
        )
        return {"chunks": found, "filters": filters, "queues": views.queues_data(app)}

    def pages() -> list[Route]:
        def view(template: str, build: Callable[[Request], dict[str, Any]]) -> Any:
            return errors(lambda r: page(r, template, **build(r)), as_json=False)

        def chunk_ctx(r: Request) -> dict[str, Any]:
            return {"detail": views.chunk_detail(app, r.path_params["chunk_id"])}

        def queues_ctx(r: Request) -> dict[str, Any]:
            return {"queues": views.queues_data(app)}

        return [
            Route("/", view("overview.html", overview_context)),
            Route("/fragments/overview", view("_overview.html", overview_context)),
            Route("/queues", view("queues.html", queues_ctx)),
            Route("/fragments/queues", view("_queues.html", queues_ctx)),
            Route("/chunks", view("chunks.html", chunks_context)),
            Route("/fragments/chunks", view("_chunks.html", chunks_context)),
            Route("/chunks/{chunk_id}", view("chunk.html", chunk_ctx)),
            Route("/fragments/chunks/{chunk_id}", view("_chunk.html", chunk_ctx)),
            Route("/login", errors(lambda r: page(r, "login.html"), as_json=False)),
        ]

    # --- sign in, actions -------------------------------------------------------------

    async def login(request: Request) -> Response:
        form = await request.form()
        given = str(form.get("token", ""))
        if not guard.enabled:
            return page(request, "login.html", 403, error="this dashboard is read-only")
        from chunksync.web.security import same_origin

        if not same_origin(request) or not guard.check_token(given):
            return page(request, "login.html", 403, error="wrong token")
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(
            SESSION_COOKIE, guard.new_session(), httponly=True, samesite="strict", path="/"
        )
        return response

    async def logout(request: Request) -> Response:
        form = await request.form()
        if guard.form_ok(request, str(form.get("csrf", ""))):
            guard.end_session(request)
        response = RedirectResponse("/", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    def act(kind: str, target: str, action: str) -> str:
        m = app.manager
        if kind == "chunk" and action in CHUNK_ACTIONS:
            reason = f"{action} from the dashboard"
            chunk = {"retry": m.retry_chunk, "cancel": m.cancel_chunk, "release": m.release_chunk}[
                action
            ](target, ACTOR, reason)
            return f"chunk {chunk.id} is {chunk.status.value}"
        if kind == "queue" and action in QUEUE_ACTIONS:
            queue = m.get_queue(target)
            reason = f"{action} from the dashboard"
            if action == "pause":
                return f"queue {m.pause_queue(queue.id, ACTOR, reason).name} is paused"
            if action == "resume":
                return f"queue {m.resume_queue(queue.id, ACTOR, reason).name} is resumed"
            if action == "cancel":
                return f"queue {queue.name} cancelled ({m.cancel_queue(queue.id, ACTOR, reason)})"
            return f"{m.retry_queue(queue.id, ACTOR, reason)} dead chunk(s) will run again"
        raise NotFound(f"no action '{action}' on a {kind}")

    async def form_action(request: Request) -> Response:
        from starlette.concurrency import run_in_threadpool

        form = await request.form()
        csrf = str(form.get("csrf", ""))
        if not guard.enabled:
            return page(request, "error.html", 403, message="this dashboard is read-only")
        if not guard.form_ok(request, csrf):
            return page(request, "error.html", 403, message="sign in with the token first")
        back = str(form.get("next", "/"))
        if not back.startswith("/") or back.startswith("//"):
            back = "/"
        try:
            notice = await run_in_threadpool(
                act,
                str(form.get("kind", "")),
                str(form.get("target", "")),
                str(form.get("action", "")),
            )
        except ChunksyncError as exc:
            notice = f"refused: {exc}"
        sep = "&" if "?" in back else "?"
        return RedirectResponse(f"{back}{sep}{urlencode({'notice': notice})}", status_code=303)

    # --- JSON API ---------------------------------------------------------------------

    def api_action(kind: str) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            from starlette.concurrency import run_in_threadpool

            if not guard.enabled:
                return JSONResponse({"error": "this dashboard is read-only"}, status_code=403)
            if not guard.bearer_ok(request):
                return JSONResponse(
                    {"error": "a bearer token is required"},
                    status_code=401,
                    headers={"www-authenticate": "Bearer"},
                )
            p = request.path_params
            try:
                notice = await run_in_threadpool(act, kind, p["target"], p["action"])
            except ChunksyncError as exc:
                status = (
                    404
                    if isinstance(exc, NotFound)
                    else 409
                    if isinstance(exc, StateError)
                    else 400
                )
                return JSONResponse({"error": str(exc)}, status_code=status)
            return JSONResponse({"ok": True, "message": notice})

        return endpoint

    def api(build: Callable[[Request], Any]) -> Callable[[Request], Awaitable[Response]]:
        return errors(lambda r: JSONResponse(build(r)), as_json=True)

    def metrics_endpoint(request: Request) -> Response:
        body, content_type = metrics.render(app.manager)
        return Response(body, media_type=content_type)

    routes = [
        *pages(),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/actions", form_action, methods=["POST"]),
        Route("/api/overview", api(lambda r: views.overview(app))),
        Route("/api/queues", api(lambda r: views.queues_data(app))),
        Route("/api/charts", api(lambda r: views.charts_data(app))),
        Route("/api/chunks", api(lambda r: chunks_context(r)["chunks"])),
        Route(
            "/api/chunks/{chunk_id}",
            api(lambda r: views.chunk_detail(app, r.path_params["chunk_id"])),
        ),
        Route("/api/chunks/{target}/{action}", api_action("chunk"), methods=["POST"]),
        Route("/api/queues/{target}/{action}", api_action("queue"), methods=["POST"]),
        Route("/openapi.json", lambda r: JSONResponse(openapi_document())),
        Route("/metrics", errors(metrics_endpoint, as_json=True)),
        Mount("/static", StaticFiles(packages=[("chunksync.web", "static")]), name="static"),
    ]
    middleware = [
        Middleware(SecurityHeaders),
        Middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts or LOOPBACK_HOSTS),
    ]
    return Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers={404: not_found, 405: not_found},
    )


async def not_found(request: Request, exc: Exception) -> Response:
    """Unknown paths: JSON under /api (as the OpenAPI document says), text elsewhere."""
    from starlette.exceptions import HTTPException

    status = exc.status_code if isinstance(exc, HTTPException) else 404
    detail = exc.detail if isinstance(exc, HTTPException) else "Not Found"
    if request.url.path.startswith("/api/"):
        return JSONResponse({"error": detail}, status_code=status)
    return Response(detail, status_code=status, media_type="text/plain")
