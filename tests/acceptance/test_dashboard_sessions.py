"""Sign-in sessions of the real `chunksync dashboard` process:

- the session cookie is HttpOnly and SameSite=Strict (and Secure when served over https), is
  signed, and holds neither the operator token nor the id the database keeps;
- the session survives a restart of the dashboard (it lives in the database), and sign-out
  deletes it, so the same cookie opens nothing afterwards;
- a session unused for --session-idle ends;
- wrong tokens are rate-limited per client address, for every dashboard on the database: after
  five, even the right token gets 429 with Retry-After, and the lockout is audited.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from chunksync.app import App
from chunksync.web.security import SESSION_COOKIE
from chunksync.web.sessions import session_id
from tests.acceptance.test_dashboard_access import ROOT
from tests.acceptance.web_server import TOKEN, free_port

pytestmark = pytest.mark.timeout(120)

START_TIMEOUT_SECONDS = 60.0
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@contextmanager
def dashboard(db_url: str, *options: str) -> Iterator[str]:
    """The base URL of a real `chunksync dashboard` process holding the operator token."""
    port = free_port()
    env = {**os.environ, "CHUNKSYNC_DASHBOARD_TOKEN": TOKEN}
    command = [sys.executable, "-m", "chunksync", "--db", db_url, "dashboard"]
    proc = subprocess.Popen(
        [*command, "--port", str(port), *options],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while True:
            assert proc.poll() is None, proc.communicate(timeout=5)
            try:
                if httpx.get(f"{base}/healthz").status_code < 600:
                    break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the dashboard did not start"
                time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=15)
        assert "Traceback" not in err and TOKEN not in out + err


def sign_in(base: str, token: str = TOKEN, **headers: str) -> httpx.Response:
    return httpx.post(f"{base}/login", data={"token": token}, headers=headers)


def signed_in(base: str, cookie: str) -> str | None:
    """The CSRF token of the page when the cookie opens a session, else None."""
    page = httpx.get(f"{base}/", cookies={SESSION_COOKIE: cookie})
    assert page.status_code == 200
    found = _CSRF.search(page.text)
    return found.group(1) if found and "Sign out" in page.text else None


@pytest.fixture
def db(sqlite_url: str) -> str:
    with App(sqlite_url):
        pass
    return sqlite_url


def test_a_session_survives_a_restart_and_ends_at_sign_out(db: str) -> None:
    with dashboard(db) as base:
        answer = sign_in(base)
        assert answer.status_code == 303
        cookie = answer.cookies[SESSION_COOKIE]
        header = answer.headers["set-cookie"].lower()
        assert "httponly" in header and "samesite=strict" in header and "secure" not in header
        assert signed_in(base, cookie) is not None
    with App(db) as app:  # the database keeps the token's hash, the cookie the token
        token = cookie.rpartition(".")[0]
        assert TOKEN not in cookie and session_id(token) not in cookie
        assert app.backend.fetch_one("session_get", {"id": session_id(token), "idle_s": 3600})
    with dashboard(db) as base:  # a new process: the same cookie still signs in
        csrf = signed_in(base, cookie)
        assert csrf is not None
        assert signed_in(base, f"{token}.forged-signature") is None
        out = httpx.post(f"{base}/logout", data={"csrf": csrf}, cookies={SESSION_COOKIE: cookie})
        assert out.status_code == 303
        assert signed_in(base, cookie) is None
    with App(db) as app:
        assert (
            app.backend.fetch_one("session_get", {"id": session_id(token), "idle_s": 3600}) is None
        )
        actions = [a.action for a in app.manager.list_audit(limit=50)]
        assert "dashboard_signin" in actions and "dashboard_signout" in actions
        assert TOKEN not in json.dumps([a.details for a in app.manager.list_audit(limit=50)])


def test_the_cookie_is_secure_over_https(db: str) -> None:
    with dashboard(db) as base:  # uvicorn trusts X-Forwarded-Proto from loopback (a proxy)
        answer = sign_in(base, **{"X-Forwarded-Proto": "https"})
        assert answer.status_code == 303
        assert "secure" in answer.headers["set-cookie"].lower()


def test_an_idle_session_ends(db: str) -> None:
    with dashboard(db, "--session-idle", "2s") as base:
        cookie = sign_in(base).cookies[SESSION_COOKIE]
        sid = session_id(cookie.rpartition(".")[0])
        deadline = time.monotonic() + 60
        with App(db) as app:  # watched in the database: a request would keep it alive
            while app.backend.fetch_one("session_get", {"id": sid, "idle_s": 2.0}):
                assert time.monotonic() < deadline, "the idle session did not end"
                time.sleep(0.2)
        assert signed_in(base, cookie) is None


def test_wrong_tokens_are_rate_limited_for_every_dashboard(db: str) -> None:
    with dashboard(db) as first, dashboard(db) as second:
        for _ in range(5):
            assert sign_in(first, "not-the-token-at-all").status_code == 403
        refused = sign_in(second, TOKEN)  # the right token, from a locked-out address
        assert refused.status_code == 429
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        assert SESSION_COOKIE not in refused.cookies
        assert sign_in(first, TOKEN).status_code == 429
    with App(db) as app:
        [lockout] = [a for a in app.manager.list_audit() if a.action == "dashboard_signin_locked"]
        assert lockout.details["address"] == "127.0.0.1" and TOKEN not in json.dumps(
            lockout.details
        )


def test_bad_session_limits_are_one_sentence(db: str) -> None:
    command = [sys.executable, "-m", "chunksync", "--db", db, "dashboard"]
    env = {**os.environ, "CHUNKSYNC_DASHBOARD_TOKEN": TOKEN}
    done = subprocess.run(
        [*command, "--session-idle", "soon"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "--session-idle" in done.stderr and "error:" in done.stderr
