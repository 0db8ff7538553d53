"""`health`, `status` and `chunks` with --tenant through the real command line: one tenant's
figures only, and one clear sentence for a tenant that does not exist."""

from __future__ import annotations

import json

import pytest

from chunksync.app import App
from tests.acceptance.test_cli import one_error, run

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def two_tenants(sqlite_url: str) -> str:
    with App(sqlite_url) as app:
        app.handler("job")(lambda ctx: None)
        app.create_queue("job://big", [{}] * 7, tenant="big")
        app.create_queue("job://small", [{}] * 2, tenant="small")
    run("tenants", "set", "small", "--max-in-flight", "3", db=sqlite_url)
    return sqlite_url


def test_health_of_one_tenant(two_tenants: str) -> None:
    data = json.loads(run("health", "--tenant", "small", "--json", db=two_tenants).stdout)
    assert "system" not in data  # other tenants' backlog is not this tenant's to see
    tenant = data["tenant"]
    assert (tenant["tenant"], tenant["backlog"], tenant["max_in_flight"]) == ("small", 2, 3)
    assert [q["name"] for q in data["queues"]] == ["job://small"]
    said = run("health", "--tenant", "small", db=two_tenants).stdout
    assert "tenant small:" in said and "backlog 2" in said and "in flight 0 of 3" in said
    whole = json.loads(run("health", "--json", db=two_tenants).stdout)
    assert whole["system"]["backlog"] == 9 and len(whole["queues"]) == 2


def test_status_and_chunks_filter_by_tenant(two_tenants: str) -> None:
    queues = json.loads(run("status", "--tenant", "big", "--json", db=two_tenants).stdout)
    assert [q["name"] for q in queues] == ["job://big"]
    chunks = json.loads(run("chunks", "--tenant", "small", "--json", db=two_tenants).stdout)
    assert len(chunks) == 2
    assert json.loads(run("status", "--tenant", "nobody", "--json", db=two_tenants).stdout) == []


def test_an_unknown_tenant_or_a_queue_of_another_is_one_sentence(two_tenants: str) -> None:
    bad = run("health", "--tenant", "nobody", db=two_tenants, expect=1)
    assert "no tenant 'nobody'" in one_error(bad)
    [big] = json.loads(run("status", "--tenant", "big", "--json", db=two_tenants).stdout)
    bad = run("health", "--tenant", "small", "--queue", big["id"], db=two_tenants, expect=1)
    assert "tenant 'small' has no queue" in one_error(bad)
