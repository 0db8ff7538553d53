"""One mapping from what went wrong to the dashboard's answer, for pages and the JSON API alike.

    NotFound                      404
    StateError                    409   the chunk's or queue's state does not allow it
    SignInRequired                401   a wrong token, or none on a private dashboard
    any other ChunksyncError      400   bad input: an unknown status, a limit out of range...
    Starlette's 404 and 405       as they are

The JSON API answers `{"error": "<one sentence>"}` (as its OpenAPI document says), pages the
error page. These are the app's exception handlers (`EXCEPTION_HANDLERS`): routes just raise.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from chunksync.exceptions import ChunksyncError, NotFound, StateError
from chunksync.redact import redact
from chunksync.web.rendering import page
from chunksync.web.security import SignInRequired

API_PREFIX = "/api/"
METRICS_PATH = "/metrics"


def status_for(exc: ChunksyncError) -> int:
    """The HTTP status of one of our exceptions."""
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, StateError):
        return 409
    if isinstance(exc, SignInRequired):
        return 401
    return 400


def error_json(message: str, status: int, headers: Mapping[str, str] | None = None) -> Response:
    """The JSON API's error shape."""
    return JSONResponse({"error": message}, status_code=status, headers=headers)


async def chunksync_error(request: Request, exc: Exception) -> Response:
    """Our exceptions: JSON for the API and for /metrics (both read by programs), else a page."""
    assert isinstance(exc, ChunksyncError)  # registered for ChunksyncError only
    status, message = status_for(exc), redact(str(exc))  # a dependency's name may hold one
    path = request.url.path
    if path.startswith(API_PREFIX) or path == METRICS_PATH:
        challenge = {"www-authenticate": "Bearer"} if status == 401 else None
        return error_json(message, status, challenge)
    if status == 401:
        return page(request, "login.html", status, error=message)
    return page(request, "error.html", status, message=message)


async def http_error(request: Request, exc: Exception) -> Response:
    """Unknown paths and methods: JSON under /api (as the OpenAPI document says), text elsewhere."""
    status = exc.status_code if isinstance(exc, HTTPException) else 404
    detail = exc.detail if isinstance(exc, HTTPException) else "Not Found"
    if request.url.path.startswith(API_PREFIX):
        return error_json(detail, status)
    return Response(detail, status_code=status, media_type="text/plain")


_Handler = Callable[[Request, Exception], Awaitable[Response]]

EXCEPTION_HANDLERS: Mapping[Any, _Handler] = {
    ChunksyncError: chunksync_error,
    404: http_error,
    405: http_error,
}
