"""What every route of the dashboard shares, kept on the Starlette app's `state`.

`create_app` builds one `Dashboard` and stores it as `app.state.dashboard`; routes reach it
through `request.app.state`, so they are plain functions of the request, not closures. Routes
that read or act take `dashboard(request)`: the view this request's token or sign-in opens.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from jinja2 import Environment
from starlette.requests import Request

from chunksync.app import App
from chunksync.web.security import Guard


@dataclass(frozen=True, slots=True)
class Dashboard:
    """The application shown, the operator token's guard, the templates and the refresh rate;
    `tenant`: the one tenant this view shows (a tenant's token or sign-in), None for all."""

    app: App
    guard: Guard
    templates: Environment
    poll_ms: int
    tenant: str | None = None

    def for_tenant(self, tenant: str) -> Dashboard:
        """The dashboard as one tenant sees it: every read through the database's view of that
        tenant (row-level security), so a page cannot show another tenant's row by mistake."""
        return replace(self, app=self.app.for_tenant(tenant), tenant=tenant)


def board(request: Request) -> Dashboard:
    """The dashboard itself, whoever asks (sign-in, the probes, the page frame)."""
    found: Dashboard = request.app.state.dashboard
    return found


def dashboard(request: Request) -> Dashboard:
    """The dashboard as this request may see it: one tenant's for a tenant's token or
    sign-in; every tenant's for the operator, and for anyone on a dashboard that is not
    private. A wrong token, or none on a private dashboard, raises SignInRequired (401)."""
    found = board(request)
    tenant = found.guard.viewer_tenant(request)
    return found if tenant is None else found.for_tenant(tenant)
