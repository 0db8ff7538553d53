"""Dashboard sign-in sessions and the sign-in rate limit, kept in the database.

Kept in the database, not in the dashboard process, so that a session survives a restart of
the dashboard and every dashboard process on one database knows the same sessions and the same
failed sign-ins (an address cannot spread its guesses over several processes).

- A session is a random token held only by the browser (in a signed cookie, security.py). The
  table keeps its SHA-256 as the id: whoever reads the table cannot sign in with what it holds.
  A session ends at its absolute limit (counted from sign-in) or after its idle limit without a
  request, whichever is first; sign-out deletes its row.
- Each failed sign-in of a client address is a row, kept for the window. An address with
  `max_failures` in the window is refused (429, with when to try again) until the oldest of
  them leaves the window, even with the right token; a success forgives its failures.
- Sign-in, sign-out and a lockout are audited (actor `dashboard`), never with the token.

All times are the database clock's (NOW() in the queries), so processes whose clocks differ
still agree on when a session or a lockout ends.
"""

from __future__ import annotations

import hashlib
import math
import secrets
from collections.abc import Mapping
from dataclasses import dataclass

from chunksync.backends.base import Backend, Session
from chunksync.manager import dump_json

OPERATOR_SCOPE = "operator"
TENANT_SCOPE = "tenant:"  # + the tenant's id: a tenant's sign-in, which reads that tenant only
ACTOR = "dashboard"
# A request less than this after the last one does not write the session's row again: pages
# refresh their fragments every few seconds, and the idle limit is minutes, not seconds.
TOUCH_EVERY_SECONDS = 30.0


@dataclass(frozen=True, slots=True)
class SessionPolicy:
    """How long sessions live and how many failed sign-ins an address gets per window."""

    idle_s: float = 30 * 60.0
    max_s: float = 12 * 3600.0
    max_failures: int = 5
    window_s: float = 60.0

    def __post_init__(self) -> None:
        if self.idle_s <= 0 or self.max_s <= 0 or self.window_s <= 0 or self.max_failures < 1:
            raise ValueError("session limits and the sign-in window must be positive")


@dataclass(frozen=True, slots=True)
class LiveSession:
    """A session found live: its id (the token's hash) and what it may do."""

    id: str
    scope: str


def session_id(token: str) -> str:
    """The id a session is stored under: the SHA-256 of its token, never the token."""
    return hashlib.sha256(token.encode()).hexdigest()


class SessionStore:
    """The sessions and failed sign-ins of the dashboards on one database."""

    def __init__(self, backend: Backend, policy: SessionPolicy | None = None) -> None:
        self.backend = backend
        self.policy = policy or SessionPolicy()

    def create(self, address: str, scope: str = OPERATOR_SCOPE) -> str:
        """A new session for a successful sign-in from `address`: its token, for the cookie.
        The address's failures are forgiven and the sign-in audited."""
        token = secrets.token_urlsafe(32)
        sid = session_id(token)
        with self.backend.transaction() as s:
            s.execute("sessions_prune", {"idle_s": self.policy.idle_s})
            s.execute("session_add", {"id": sid, "scope": scope, "max_s": self.policy.max_s})
            s.execute("signin_failures_clear", {"address": address})
            _audit(s, "dashboard_signin", address, {"session": sid[:12], "scope": scope})
        return token

    def find(self, token: str) -> LiveSession | None:
        """The live session of `token`, or None (unknown, ended, idle too long or too old).
        Using it starts its idle limit again."""
        sid = session_id(token)
        row = self.backend.fetch_one("session_get", {"id": sid, "idle_s": self.policy.idle_s})
        if row is None:
            return None
        if float(row["idle_s"]) >= min(TOUCH_EVERY_SECONDS, self.policy.idle_s / 4):
            self.backend.execute("session_touch", {"id": sid})
        return LiveSession(str(row["id"]), str(row["scope"]))

    def end(self, token: str, address: str) -> bool:
        """Sign-out: the session's row deleted (audited when there was one)."""
        sid = session_id(token)
        with self.backend.transaction() as s:
            ended = s.execute("session_remove", {"id": sid}) > 0
            if ended:
                _audit(s, "dashboard_signout", address, {"session": sid[:12]})
        return ended

    def retry_after(self, address: str) -> int | None:
        """Seconds until `address` may try to sign in again, or None when it may now."""
        params = {
            "address": address,
            "window_s": self.policy.window_s,
            "limit": self.policy.max_failures,
        }
        rows = self.backend.fetch_all("signin_failures_recent", params)
        if len(rows) < self.policy.max_failures:
            return None
        oldest, now = float(rows[-1]["at"]), float(rows[-1]["now"])
        return max(1, math.ceil(oldest + self.policy.window_s - now))

    def record_failure(self, address: str) -> int | None:
        """A failed sign-in from `address`; when it reaches the limit, the lockout is audited
        and its length returned (seconds)."""
        window = {"window_s": self.policy.window_s}
        with self.backend.transaction() as s:
            s.execute("signin_failures_prune", window)
            s.execute("signin_failure_add", {"address": address})
        locked = self.retry_after(address)
        if locked is not None:
            details = {"failures": self.policy.max_failures, "retry_after_s": locked}
            with self.backend.transaction() as s:
                _audit(s, "dashboard_signin_locked", address, details)
        return locked


def _audit(s: Session, action: str, address: str, details: Mapping[str, object]) -> None:
    s.execute(
        "insert_audit",
        {
            "action": action,
            "actor": ACTOR,
            "reason": f"from {address}",
            "chunk_id": None,
            "queue_id": None,
            "details": dump_json({"address": address, **details}, "detail"),
        },
    )
