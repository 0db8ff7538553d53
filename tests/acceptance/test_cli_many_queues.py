"""The operator's listings at a fleet's size, through the real `chunksync` command: a product
that syncs 5,000 tenants' ten folders has 50,000 queues, and `status` printed every one of them
(45 s, 100,000 lines), `health` 800,000 lines in 132 s. A listing shows the first 50 and says
how many there are and how to see the rest; `--json` still gives every one."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

from chunksync.app import App
from tests.acceptance.test_cli_everyday import run, worker_says

QUEUES = 55


def many_queues(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'many.db'}"
    with App(url) as app:
        app.handler("pages")(lambda ctx: 1)
        for n in range(QUEUES):
            app.create_queue("pages://api.example.com", [{"page": 1}], name=f"q{n:02d}")
    return url


def rows_named(text: str) -> list[str]:
    return re.findall(r"\bq\d\d\b", text)


def test_status_shows_the_newest_fifty_and_says_how_many_more(tmp_path: Path) -> None:
    url = many_queues(tmp_path)
    every = rows_named(run("--db", url, "status", "--all").stdout)
    assert sorted(every) == [f"q{n:02d}" for n in range(QUEUES)]
    out = run("--db", url, "status").stdout
    assert rows_named(out) == every[:50]  # the same order: newest first
    assert "50 of 55 queues (newest first) shown: --limit N or --all for more" in out
    few = run("--db", url, "status", "--limit", "3").stdout
    assert rows_named(few) == every[:3] and "3 of 55 queues" in few
    assert len(json.loads(run("--db", url, "status", "--json").stdout)) == QUEUES
    assert len(json.loads(run("--db", url, "status", "--json", "--limit", "4").stdout)) == 4
    alone = run("--db", url, "status", "--tenant", "default", "--limit", "2").stdout
    assert len(rows_named(alone)) == 2 and "2 of 55 queues" in alone


def test_health_shows_the_first_queues_and_says_how_many_more(tmp_path: Path) -> None:
    url = many_queues(tmp_path)
    out = run("--db", url, "health", "--limit", "2").stdout
    assert len(re.findall(r"(q\d\d) \(active", out)) == 2, out
    assert "2 of 55 queues' health (newest first) shown" in out
    every = json.loads(run("--db", url, "health", "--json").stdout)
    assert len(every["queues"]) == QUEUES and "system" in every
    one = run("--db", url, "health", "--queue", "q07").stdout
    assert re.findall(r"(q\d\d) \(active", one) == ["q07"] and "shown" not in one


def test_scale_advice_puts_the_changes_first_and_says_how_many_more(tmp_path: Path) -> None:
    url = many_queues(tmp_path)
    out = run("--db", url, "scale-advice", "--limit", "3").stdout
    assert len(re.findall(r"^queue ", out, flags=re.M)) == 3, out
    assert re.search(r"3 of 55 queues' advice \(those asking for a change first; \d+ ok\)", out)
    assert len(json.loads(run("--db", url, "scale-advice", "--json").stdout)) == QUEUES


def test_a_worker_without_a_handler_says_so_once_a_kind(tmp_path: Path) -> None:
    """A fleet split by kinds: a worker for one kind said a line for each of another's
    thousands of queues at every start."""
    line, rest = worker_says(many_queues(tmp_path))
    assert re.search(r"no handler for 55 queues \(q\d\d, \.\.\.\) \(source kind 'pages'\)", line)
    assert "no handler" not in rest


def test_tenants_lists_the_busiest_first_and_says_how_many_more(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'tenants.db'}"
    with App(url) as app:
        app.handler("pages")(lambda ctx: 1)
        for n in range(QUEUES):  # tenant t54 has the most waiting
            app.create_queue("pages://x", [{"i": i} for i in range(n + 1)], tenant=f"t{n:02d}")
    out = run("--db", url, "tenants", "--limit", "3").stdout
    assert re.findall(r"\bt\d\d\b", out) == ["t54", "t53", "t52"], out
    assert "3 of 55 tenants (the busiest first) shown: --limit N or --all for more, --json" in out
    assert len(re.findall(r"\bt\d\d\b", run("--db", url, "tenants").stdout)) == 50
    assert len(json.loads(run("--db", url, "tenants", "--json").stdout)) == QUEUES


def test_alerts_of_many_queues_are_one_change_and_a_short_list(tmp_path: Path) -> None:
    url = many_queues(tmp_path)
    db = sqlite3.connect(url.removeprefix("sqlite:///"))
    with db:
        db.execute("UPDATE chunks SET status = 'dead', dead_reason = 'gone', attempts = 1")
    db.close()
    said = run("--db", url, "alerts", "--evaluate", "--limit", "3").stdout
    changes = [ln for ln in said.splitlines() if ln.startswith("firing: ")]
    assert len(changes) == 1 and changes[0].startswith("firing: dead_chunks:*: 55 dead_chunks")
    listed = [ln for ln in said.splitlines() if ln.startswith("[warning] dead_chunks:")]
    assert len(listed) == 3 and "55 alert(s) firing" in said
    assert "3 of 55 alerts (the critical first) shown" in said
    assert len(json.loads(run("--db", url, "alerts", "--json").stdout)) == QUEUES


def test_sla_lists_fifty_objectives_and_says_how_many_more(tmp_path: Path) -> None:
    from chunksync.observe import capacity

    url = many_queues(tmp_path)
    with App(url) as app:
        for q in app.manager.list_queues():
            capacity.set_objectives(app.manager, q.id, 30.0, None)
    out = run("--db", url, "sla").stdout
    assert len(re.findall(r"^queue q\d\d wait: ", out, flags=re.M)) == 50
    assert "50 of 55 objectives (those burning their budget first) shown" in out
    assert "--tenants for a line a tenant" in out
    assert len(json.loads(run("--db", url, "sla", "--json").stdout)) == QUEUES


def many_accounts(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'accounts.db'}"
    with App(url) as app:
        app.handler("pages")(lambda ctx: 1)
        for n in range(QUEUES):
            app.create_queue(f"pages://u{n:02d}@api.example.com/box", [{}], name=f"q{n:02d}")
    return url


def test_deps_lists_the_gated_and_busiest_fifty_and_says_how_many_more(tmp_path: Path) -> None:
    url = many_accounts(tmp_path)
    run("--db", url, "deps", "close", "pages://u40@api.example.com", "--reason", "outage")
    out = run("--db", url, "deps", "--limit", "3").stdout
    names = re.findall(r"pages://u\d\d@api\.example\.com", out)
    assert len(names) == 3 and names[0] == "pages://u40@api.example.com", out  # gated first
    assert "3 of 55 dependencies (the gated and the busiest first) shown" in out
    assert len(json.loads(run("--db", url, "deps", "--json").stdout)) == QUEUES
    health = run("--db", url, "health", "--limit", "1").stdout
    assert "50 of 55 dependencies (the gated and the busiest first) shown" in health


def test_the_dependencies_page_shows_fifty_and_says_how_many_more(tmp_path: Path) -> None:
    import httpx

    from chunksync.web.views import PAGE_DEPENDENCIES
    from tests.acceptance.web_server import serve

    url = many_accounts(tmp_path)
    with App(url) as app, serve(app) as base:
        fragment = httpx.get(f"{base}/fragments/dependencies").text
        every = httpx.get(f"{base}/api/dependencies").json()
    assert fragment.count("data-dependency=") == PAGE_DEPENDENCIES
    assert f"{PAGE_DEPENDENCIES} of {QUEUES} dependencies shown" in fragment
    assert len(every) == QUEUES


def test_the_chunks_page_takes_a_typed_queue_past_two_hundred(tmp_path: Path) -> None:
    """50,000 queues were a 3.4 MB list of choices in the chunks page's filter."""
    import httpx

    from chunksync.web.views import QUEUE_CHOICES
    from tests.acceptance.web_server import serve

    url = f"sqlite:///{tmp_path / 'choices.db'}"
    with App(url) as app:
        app.handler("pages")(lambda ctx: 1)
        for n in range(QUEUE_CHOICES + 1):
            app.create_queue("pages://x", [{"n": n}], name=f"q{n:03d}")
        with serve(app) as base:
            page = httpx.get(f"{base}/chunks").text
            one = httpx.get(f"{base}/chunks", params={"queue": "q007"}).text
    assert 'id="queue-typed"' in page and '<select name="queue">' not in page
    assert one.count("data-chunk=") == 1 and 'value="q007"' in one


def test_the_stores_accounts_and_folders_list_fifty_and_say_how_many_more(tmp_path: Path) -> None:
    url = many_queues(tmp_path)  # a store's schema, and folders as a sync records them
    db = sqlite3.connect(url.removeprefix("sqlite:///"))
    with db:
        db.executemany(
            "INSERT INTO mail_folders (account, folder, uidvalidity, synced_at, origin)"
            " VALUES (?, ?, 1, 0, ?)",
            [
                (f"a{n:02d}@x", f"F{f}", f"imap://a{n:02d}@x/")
                for n in range(QUEUES)
                for f in (1, 2)
            ],
        )
    db.close()
    accounts = run("--db", url, "accounts", "--limit", "3").stdout
    assert len(re.findall(r"a\d\d@x", accounts)) == 3
    assert "3 of 55 accounts shown: --limit N or --all for more\n" in accounts  # no --json
    folders = run("--db", url, "folders").stdout
    assert len(re.findall(r"\bF[12]\b", folders)) == 50
    more = "50 of 110 folders shown: --limit N or --all for more, ACCOUNT for one account's\n"
    assert more in folders
    assert len(re.findall(r"\bF[12]\b", run("--db", url, "folders", "--all").stdout)) == 110
