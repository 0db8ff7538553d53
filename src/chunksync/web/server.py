"""`create_app`: the dashboard assembled from its routes, middleware, error handlers and state.

pages.py      HTML pages, their live fragments, sign-in, action forms and bulk actions
api.py        the JSON API, /openapi.json and /metrics
probes.py     /healthz and /readyz for load balancers
bulk.py       bulk actions on chunks (selected, or all matching), each chunk audited
errors.py     our exceptions -> 404 / 409 / 400, as JSON or as the error page
security.py   the token, session cookies, CSRF, security headers
sessions.py   sessions and the sign-in rate limit, in the database
state.py      what routes share, on `request.app.state`
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from chunksync.app import App
from chunksync.web import api, capacity, pages, probes
from chunksync.web.errors import EXCEPTION_HANDLERS
from chunksync.web.rendering import environment
from chunksync.web.security import Guard, SecurityHeaders
from chunksync.web.sessions import SessionPolicy, SessionStore
from chunksync.web.state import Dashboard

POLL_MILLISECONDS = 2000
LOOPBACK_HOSTS = ["127.0.0.1", "localhost", "::1", "[::1]"]


def create_app(
    app: App,
    *,
    token: str | None = None,
    allowed_hosts: list[str] | None = None,
    poll_ms: int = POLL_MILLISECONDS,
    sessions: SessionPolicy | None = None,
    private: bool = False,
) -> Starlette:
    """The dashboard for `app`. Without `token` it is read-only. `allowed_hosts` are the Host
    headers it answers (loopback names by default, against DNS rebinding). `sessions` sets the
    sign-in sessions' limits and the sign-in rate limit (SessionPolicy's defaults otherwise).
    `private`: nothing is shown without a token (the operator's or a tenant's)."""
    static = Mount("/static", StaticFiles(packages=[("chunksync.web", "static")]), name="static")
    web = Starlette(
        routes=[*pages.ROUTES, *api.ROUTES, *probes.ROUTES, *capacity.ROUTES, static],
        middleware=[
            Middleware(SecurityHeaders),
            Middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts or LOOPBACK_HOSTS),
        ],
        exception_handlers=dict(EXCEPTION_HANDLERS),
    )
    tenants = app.manager.tenants
    lookup = tenants.token_tenant if app.backend.tenant_scoping else None
    guard = Guard(
        token, SessionStore(app.backend, sessions), tenant_of_token=lookup, private=private
    )
    web.state.dashboard = Dashboard(app, guard, environment(), poll_ms)
    return web
