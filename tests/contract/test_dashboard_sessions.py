"""The dashboard's session store on every backend: sessions kept by their token's hash, ended by
either limit or by sign-out, seen alike by a second store on the same database (another
dashboard process), and failed sign-ins counted per address with a lockout, all audited
without the token."""

from __future__ import annotations

import json

from chunksync.app import App
from chunksync.models import AuditEntry
from chunksync.web.sessions import SessionPolicy, SessionStore, session_id


def audit_of(app: App, action: str) -> list[AuditEntry]:
    return [a for a in app.manager.list_audit(limit=500) if a.action == action]


def test_a_session_is_stored_by_its_hash_and_shared(app: App) -> None:
    store = SessionStore(app.backend)
    token = store.create("10.0.0.1")
    found = store.find(token)
    assert found is not None and found.id == session_id(token) and found.scope == "operator"
    with app.backend.transaction(write=False) as s:
        [row] = s.fetch_all("session_get", {"id": session_id(token), "idle_s": 60.0})
    assert token not in json.dumps(row, default=str)  # the table never holds the token
    with App(app.url) as other:  # another dashboard process on the same database
        assert SessionStore(other.backend).find(token) is not None
    assert store.find(token + "x") is None
    [signin] = audit_of(app, "dashboard_signin")
    assert signin.actor == "dashboard" and signin.details["address"] == "10.0.0.1"
    assert token not in json.dumps(signin.details) and signin.details["session"] in found.id


def test_sign_out_deletes_the_session(app: App) -> None:
    store = SessionStore(app.backend)
    token = store.create("10.0.0.1")
    assert store.end(token, "10.0.0.1")
    assert store.find(token) is None
    assert not store.end(token, "10.0.0.1")  # a second sign-out finds nothing
    assert len(audit_of(app, "dashboard_signout")) == 1


def test_sessions_end_by_their_idle_and_absolute_limits(app: App) -> None:
    token = SessionStore(app.backend).create("10.0.0.1")
    # The limits are read when a session is used (idle) or written (absolute), so a store with
    # limits of almost nothing sees at once what a real one sees after the limit.
    assert SessionStore(app.backend, SessionPolicy(idle_s=1e-9)).find(token) is None
    assert SessionStore(app.backend).find(token) is not None
    short = SessionStore(app.backend, SessionPolicy(max_s=1e-9)).create("10.0.0.1")
    assert SessionStore(app.backend).find(short) is None
    # A new sign-in forgets the ended sessions.
    SessionStore(app.backend, SessionPolicy(idle_s=1e-9)).create("10.0.0.1")
    assert SessionStore(app.backend).find(token) is None


def test_failed_sign_ins_lock_an_address_out_for_every_process(app: App) -> None:
    store = SessionStore(app.backend, SessionPolicy(max_failures=3, window_s=60.0))
    assert [store.record_failure("10.0.0.9") for _ in range(2)] == [None, None]
    assert store.retry_after("10.0.0.9") is None
    locked = store.record_failure("10.0.0.9")
    assert locked is not None and 1 <= locked <= 60
    with App(app.url) as other:
        again = SessionStore(other.backend, store.policy).retry_after("10.0.0.9")
        assert again is not None and 1 <= again <= 60
    assert store.retry_after("10.0.0.10") is None  # another address is not held
    [lockout] = audit_of(app, "dashboard_signin_locked")
    assert lockout.details["address"] == "10.0.0.9" and lockout.details["failures"] == 3
    store.create("10.0.0.9")  # (the dashboard refuses it first; a success forgives failures)
    assert store.retry_after("10.0.0.9") is None


def test_failures_older_than_the_window_do_not_count(app: App) -> None:
    store = SessionStore(app.backend, SessionPolicy(max_failures=2, window_s=1e-9))
    for _ in range(3):
        assert store.record_failure("10.0.0.7") is None
