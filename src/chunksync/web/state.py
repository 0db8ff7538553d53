"""What every route of the dashboard shares, kept on the Starlette app's `state`.

`create_app` builds one `Dashboard` and stores it as `app.state.dashboard`; routes reach it
through `request.app.state`, so they are plain functions of the request, not closures.
"""

from __future__ import annotations

from dataclasses import dataclass

from jinja2 import Environment
from starlette.requests import Request

from chunksync.app import App
from chunksync.web.security import Guard


@dataclass(frozen=True, slots=True)
class Dashboard:
    """The application shown, the operator token's guard, the templates and the refresh rate."""

    app: App
    guard: Guard
    templates: Environment
    poll_ms: int


def dashboard(request: Request) -> Dashboard:
    """The dashboard this request reached (typed: Starlette's `state` is untyped)."""
    found: Dashboard = request.app.state.dashboard
    return found
