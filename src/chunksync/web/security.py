"""The operator token, sessions, CSRF protection and security headers of the dashboard.

Without a token the dashboard is read-only: every action is refused (403). With one:
- the JSON API takes `Authorization: Bearer <token>` (a header a cross-site page cannot send);
- a browser signs in once with the token and gets a session cookie (HttpOnly, SameSite=Strict);
  every form then carries a CSRF token derived from the session (HMAC), and a POST whose Origin
  is another site is refused. The token itself never appears on a page or in a cookie.

Every HTTP answer carries SECURITY_HEADERS: a strict Content-Security-Policy (no inline
script), no framing, no sniffing, no caching.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

SESSION_COOKIE = "chunksync_session"
MAX_SESSIONS = 1000
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


class Guard:
    def __init__(self, token: str | None) -> None:
        self._token = token or None
        self._key = secrets.token_bytes(32)
        self._sessions: set[str] = set()
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self._token is not None

    def check_token(self, given: str) -> bool:
        if self._token is None:
            return False
        return hmac.compare_digest(given.encode(), self._token.encode())

    def new_session(self) -> str:
        session = secrets.token_urlsafe(32)
        with self._lock:
            if len(self._sessions) >= MAX_SESSIONS:
                self._sessions.pop()
            self._sessions.add(session)
        return session

    def end_session(self, request: Request) -> None:
        with self._lock:
            self._sessions.discard(request.cookies.get(SESSION_COOKIE, ""))

    def session(self, request: Request) -> str | None:
        found = request.cookies.get(SESSION_COOKIE)
        with self._lock:
            return found if found and found in self._sessions else None

    def csrf_for(self, session: str) -> str:
        return hmac.new(self._key, session.encode(), hashlib.sha256).hexdigest()

    def bearer_ok(self, request: Request) -> bool:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and self.check_token(given.strip())

    def form_ok(self, request: Request, csrf: str) -> bool:
        """A signed-in browser's POST: a live session, its CSRF token, and our own origin."""
        session = self.session(request)
        if session is None or not same_origin(request):
            return False
        return hmac.compare_digest(csrf.encode(), self.csrf_for(session).encode())


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
