"""The page templates: the Jinja environment, its number and time filters, and `page()`."""

from __future__ import annotations

import time
from importlib import resources
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse

from chunksync.models import ChunkStatus, ErrorCategory
from chunksync.web import charts
from chunksync.web.sessions import TENANT_SCOPE
from chunksync.web.state import board as the_board


def environment() -> Environment:
    """Templates from the package, always autoescaped: errors and names hold what sources sent."""
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


def page(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    """Render `template` with what every page shows: the sign-in state, its CSRF token, notices."""
    board = the_board(request)
    session = board.guard.session(request)
    # The one tenant shown, when the route's reads were narrowed to it (or the sign-in is one
    # tenant's, on a page that read nothing): such a viewer reads, never acts.
    viewer = getattr(request.state, "chunksync_tenant", None)
    scope = str(getattr(request.state, "chunksync_scope", ""))
    if not isinstance(viewer, str) and scope.startswith(TENANT_SCOPE):
        viewer = scope.removeprefix(TENANT_SCOPE)
    tenant = viewer if isinstance(viewer, str) else None
    context.update(
        viewer_tenant=tenant,
        can_act=session is not None and tenant is None,
        request_path=request.url.path,
        query=request.url.query,
        read_only=not board.guard.enabled,
        signed_in=session is not None,
        csrf=board.guard.csrf_for(session) if session else "",
        poll_ms=board.poll_ms,
        notice=request.query_params.get("notice", ""),
    )
    body = board.templates.get_template(template).render(**context)
    return HTMLResponse(body, status_code=status)


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
