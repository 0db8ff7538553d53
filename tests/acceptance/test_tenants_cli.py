"""`chunksync tenants` through the real command line: list, set, the audit log, a refused
enqueue, and one clear sentence for each mistake."""

from __future__ import annotations

import json

import pytest

from chunksync.app import App
from chunksync.exceptions import QuotaExceeded
from tests.acceptance.test_cli import one_error, run

pytestmark = pytest.mark.timeout(120)


def listed(db: str) -> dict[str, dict[str, object]]:
    return {t["tenant"]: t for t in json.loads(run("tenants", "--json", db=db).stdout)}


def test_set_list_and_the_audit_log(sqlite_url: str) -> None:
    with App(sqlite_url) as app:
        app.handler("job")(lambda ctx: None)
        app.create_queue("job://x", [{}] * 3, tenant="acme")
    assert "(defaults)" in run("tenants", db=sqlite_url).stdout
    said = run("tenants", "set", "acme", "--weight", "4", "--max-queued", "3", db=sqlite_url).stdout
    assert "weight 1, max in flight -, max queued -" in said and "weight 4" in said
    acme = listed(sqlite_url)["acme"]
    assert (acme["weight"], acme["max_queued"], acme["pending"]) == (4.0, 3, 3)
    run("tenants", "set", "acme", "--max-queued", "none", "--max-in-flight", "2", db=sqlite_url)
    acme = listed(sqlite_url)["acme"]
    assert (acme["max_queued"], acme["max_in_flight"]) == (None, 2)
    with App(sqlite_url) as app:
        assert [e.action for e in app.manager.list_audit()].count("tenant_set") == 2


def test_mistakes_end_in_one_sentence(sqlite_url: str) -> None:
    run("init", db=sqlite_url)
    bad = run("tenants", "set", "acme", "--max-in-flight", "many", db=sqlite_url, expect=1)
    assert "whole number" in one_error(bad)
    bad = run("tenants", "grant", "tenant_b", "--tenant", "acme", db=sqlite_url, expect=1)
    assert "one database file is one trust domain" in one_error(bad)
    bad = run("tenants", "token", "acme", db=sqlite_url, expect=1)
    assert "one database file is one trust domain" in one_error(bad)
    bad = run("tenants", "set", "acme", "--weight", "0", db=sqlite_url, expect=1)
    assert "above 0" in one_error(bad)


def test_an_enqueue_past_the_quota_is_refused_whole(sqlite_url: str) -> None:
    run("init", db=sqlite_url)
    run("tenants", "set", "small", "--max-queued", "2", db=sqlite_url)
    with App(sqlite_url) as app:
        app.handler("job")(lambda ctx: None)
        with pytest.raises(QuotaExceeded):
            app.create_queue("job://y", [{}] * 3, tenant="small")
        assert app.manager.list_queues() == []
