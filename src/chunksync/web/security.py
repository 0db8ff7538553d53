"""The operator token, sessions, CSRF protection and security headers of the dashboard.

Without a token the dashboard is read-only: every action is refused (403). With one:
- the JSON API takes `Authorization: Bearer <token>` (a header a cross-site page cannot send);
- a browser signs in once with the token and gets a session cookie (HttpOnly, SameSite=Strict,
  Secure over https) holding a random session token and its signature; the session itself is
  kept in the database (sessions.py), so it survives a restart of the dashboard and expires by
  its idle and absolute limits. Every form then carries a CSRF token derived from the session
  (HMAC), and a POST whose Origin is another site is refused. The operator token itself never
  appears on a page or in a cookie. Sign-in attempts are rate-limited per client address.

The cookie's signing key and the CSRF key are derived from the operator token, not drawn per
process: a restarted dashboard (or another one on the same database, with the same token)
accepts the cookies and forms of the last, and a new operator token ends every session.

Tenants (PostgreSQL): a tenant's token (`chunksync tenants token T`) opens the dashboard and
its API to that tenant alone, as a bearer token or through sign-in (a session scoped
`tenant:T`); its reads go through the database's view of the tenant (row-level security), and
it may not act. A `private` dashboard refuses anyone without a token (401); otherwise reads
without a token see every tenant, as before tenants. A bearer token that opens nothing is
refused on reads too, never read as no token.

Every HTTP answer carries SECURITY_HEADERS: a strict Content-Security-Policy (no inline
script), no framing, no sniffing, no caching.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chunksync.exceptions import ChunksyncError
from chunksync.web.sessions import OPERATOR_SCOPE, TENANT_SCOPE, SessionStore

SESSION_COOKIE = "chunksync_session"
_UNSET = object()  # a request whose session was not looked up yet
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


class SignInRequired(ChunksyncError):
    """A request whose token is wrong, or that has none where the dashboard is private."""


class Guard:
    """The operator token and what it opens: sessions (in `store`), their cookies, CSRF; and
    who a request is: the operator, one tenant (a token `tenant_of_token` knows), or anyone.
    A `private` dashboard shows nothing to anyone."""

    def __init__(
        self,
        token: str | None,
        store: SessionStore | None = None,
        *,
        tenant_of_token: Callable[[str], str | None] | None = None,
        private: bool = False,
    ) -> None:
        self._token = token or None
        self._store = store
        self._tenant_of_token = tenant_of_token
        self.private = private
        secret = (token or "").encode()
        self._cookie_key = hmac.new(secret, b"chunksync dashboard cookie", hashlib.sha256).digest()
        self._key = hmac.new(secret, b"chunksync dashboard csrf", hashlib.sha256).digest()

    @property
    def enabled(self) -> bool:
        return self._token is not None and self._store is not None

    def check_token(self, given: str) -> bool:
        if self._token is None:
            return False
        return hmac.compare_digest(given.encode(), self._token.encode())

    def retry_after(self, request: Request) -> int | None:
        """Seconds this client must wait before trying to sign in again, or None."""
        return None if self._store is None else self._store.retry_after(client_address(request))

    def failed_sign_in(self, request: Request) -> int | None:
        """Count a wrong token from this client; the lockout's seconds when this one began it
        (the next attempt is refused)."""
        if self._store is None:
            return None
        return self._store.record_failure(client_address(request))

    def tenant_of(self, token: str) -> str | None:
        """The tenant a tenant's token opens, or None (not one)."""
        if not token or self._tenant_of_token is None:
            return None
        return self._tenant_of_token(token)

    def viewer_tenant(self, request: Request) -> str | None:
        """The one tenant this request may see, or None for every tenant (the operator, or
        anyone on a dashboard that is not private). A bearer token that opens nothing is
        refused, never read as no token; looked up once per request."""
        return _once(request, "chunksync_tenant", self._viewer_tenant)

    def _viewer_tenant(self, request: Request) -> str | None:
        given = bearer(request)
        if given:
            if self.check_token(given):
                return None
            tenant = self.tenant_of(given)
            if tenant is None:
                raise SignInRequired("the token is wrong")
            return tenant
        if self.session(request) is not None:
            scope = str(getattr(request.state, "chunksync_scope", OPERATOR_SCOPE))
            return scope.removeprefix(TENANT_SCOPE) if scope.startswith(TENANT_SCOPE) else None
        if self.private:
            raise SignInRequired("this dashboard is private: sign in, or send a token")
        return None

    def new_session(self, request: Request, tenant: str | None = None) -> str:
        """A session for a signed-in browser (the operator's, or one tenant's): the signed
        cookie value that carries it."""
        assert self._store is not None, "sessions need the token and a database"
        scope = OPERATOR_SCOPE if tenant is None else TENANT_SCOPE + tenant
        token = self._store.create(client_address(request), scope)
        return f"{token}.{self._sign(token)}"

    def set_cookie(self, request: Request, response: Response, value: str) -> None:
        """The session cookie: script cannot read it, other sites cannot send it, and over
        https it never travels in clear; it lasts no longer than the session may."""
        max_age = None if self._store is None else int(self._store.policy.max_s)
        response.set_cookie(
            SESSION_COOKIE,
            value,
            max_age=max_age,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            path="/",
        )

    def end_session(self, request: Request) -> None:
        session = self.session(request)
        if session is not None and self._store is not None:
            self._store.end(session, client_address(request))
        request.state.chunksync_session = None

    def session(self, request: Request) -> str | None:
        """The live session token this request's cookie carries, looked up once per request."""
        return _once(request, "chunksync_session", self._live)

    def _live(self, request: Request) -> str | None:
        token, _, signature = request.cookies.get(SESSION_COOKIE, "").rpartition(".")
        if not token or self._store is None or self._token is None:
            return None
        if not hmac.compare_digest(signature.encode(), self._sign(token).encode()):
            return None  # forged or from another operator token: no database read
        live = self._store.find(token)
        if live is None:
            return None
        request.state.chunksync_scope = live.scope
        return token

    def _sign(self, token: str) -> str:
        digest = hmac.new(self._cookie_key, token.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def csrf_for(self, session: str) -> str:
        return hmac.new(self._key, session.encode(), hashlib.sha256).hexdigest()

    def bearer_ok(self, request: Request) -> bool:
        """The operator's bearer token (a tenant's opens reads only)."""
        return self.check_token(bearer(request))

    def form_ok(self, request: Request, csrf: str) -> bool:
        """A signed-in browser's POST: a live session, its CSRF token, and our own origin."""
        session = self.session(request)
        if session is None or not same_origin(request):
            return False
        return hmac.compare_digest(csrf.encode(), self.csrf_for(session).encode())


def _once(request: Request, name: str, find: Callable[[Request], str | None]) -> str | None:
    """`find(request)`, worked out once per request and kept on its state as `name`."""
    found = getattr(request.state, name, _UNSET)
    if found is _UNSET:
        found = find(request)
        setattr(request.state, name, found)
    return found if isinstance(found, str) else None


def bearer(request: Request) -> str:
    """The bearer token a request carries, or ''."""
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    return given.strip() if scheme.lower() == "bearer" else ""


def client_address(request: Request) -> str:
    """The address sign-in attempts are counted for: the peer's (behind a proxy, the proxy's
    unless the server is told to trust its forwarded headers)."""
    return request.client.host if request.client else "unknown"


def same_origin(request: Request) -> bool:
    """The Origin (or Referer) header, when sent, names this very host."""
    origin = request.headers.get("origin") or request.headers.get("referer")
    if not origin or origin == "null":
        return origin is None
    parts = urlsplit(origin)
    return parts.netloc == request.headers.get("host", "")


class SecurityHeaders:
    """ASGI middleware adding SECURITY_HEADERS to every HTTP answer, errors included."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, with_headers if scope["type"] == "http" else send)
