"""`chunksync enqueue` and `chunksync show` through the real command, and the JSON they print."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

from chunksync.app import App
from chunksync.models import ChunkStatus
from chunksync.retry import DEFAULT_POLICY
from tests.acceptance.test_cli_everyday import ISO_UTC, one_error, run


def test_enqueue_from_a_file_stdin_and_inline(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'sync.db'}"
    lines = tmp_path / "pages.jsonl"
    lines.write_text('{"page": 1}\n\n{"page": 2}\n', encoding="utf-8")
    made = run("--db", url, "enqueue", "demo://pages", "--payloads", str(lines), "--name", "p")
    assert "queue p" in made.stdout and "created with 2 chunk(s)" in made.stdout
    piped = run(
        "--db", url, "enqueue", "demo://pages", "--payloads", "-", "--payload", '{"page": 9}',
        "--priority", "5", "--tenant", "acme", "--json",
        stdin='{"page": 3}\n{"page": 4}\n',
    )  # fmt: skip
    data = json.loads(piped.stdout)
    assert data["created"] is True and data["queue"]["tenant"] == "acme"
    assert data["queue"]["priority"] == 5 and data["queue"]["totals"]["pending"] == 3
    with App(url) as app:
        payloads = [c.payload for c in app.manager.list_chunks(data["queue"]["id"])]
    assert payloads == [{"page": 3}, {"page": 4}, {"page": 9}]
    bad = one_error(run("--db", url, "enqueue", "demo://x", "--payload", "{nope", expect=1))
    assert "--payload number 1 is not JSON" in bad
    lines.write_text('{"page": 1}\n{oops\n', encoding="utf-8")
    bad = one_error(run("--db", url, "enqueue", "demo://x", "--payloads", str(lines), expect=1))
    assert f"{lines} line 2 is not JSON" in bad


def test_enqueue_with_a_unique_key_returns_the_queue_holding_it(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'sync.db'}"
    args = ("--db", url, "enqueue", "demo://nightly", "--unique-key", "nightly-2026-12-02")
    first = json.loads(run(*args, "--payload", "{}", "--json").stdout)
    again = json.loads(run(*args, "--payload", "{}", "--payload", "{}", "--json").stdout)
    assert first["created"] and not again["created"]
    assert again["queue"]["id"] == first["queue"]["id"]
    assert again["queue"]["totals"]["pending"] == 1
    said = run(*args, "--payload", "{}").stdout
    assert "already holds the key 'nightly-2026-12-02'" in said and "nothing added" in said
    run("--db", url, "cancel", first["queue"]["id"][:8], "--queue")
    assert json.loads(run(*args, "--payload", "{}", "--json").stdout)["created"]


def test_show_a_chunk_and_why_it_waits(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'sync.db'}"
    made = run("--db", url, "enqueue", "demo://x", "--payload", '{"secret_token": "abc12345"}')
    assert "created" in made.stdout
    with App(url) as app:
        [chunk] = app.manager.list_chunks()
        app.manager.register_worker("w1", "host", 1, 1)
        app.manager.claim("w1", ["demo"], limit=1, lease_s=60.0)
        app.manager.requeue_worker("w1", force=True)
        app.manager.pause_queue(chunk.queue_id)
    shown = json.loads(run("--db", url, "show", chunk.id[:8], "--json").stdout)
    assert shown["id"] == chunk.id and shown["status"] == "pending"
    assert shown["payload"] == {"secret_token": "***"}  # redacted, in JSON too
    assert shown["waits_for"] == "its queue demo://x is paused"
    assert ISO_UTC.match(shown["next_run_at"]) and ISO_UTC.match(shown["created_at"])
    assert [e["action"] for e in shown["audit"]] == ["release_chunk"]
    text = run("--db", url, "show", chunk.id).stdout
    assert "waits for" in text and "is paused" in text
    assert "abc12345" not in text  # the payload is redacted like everything else
    run("--db", url, "resume", chunk.queue_id[:8])
    ready = json.loads(run("--db", url, "show", chunk.id, "--json").stdout)
    assert "free slot" in ready["waits_for"]
    listed = run("--db", url, "chunks").stdout
    assert "next run" in listed and "now" in listed
    with App(url) as app:
        assert app.manager.get_chunk(chunk.id).status is ChunkStatus.PENDING


def test_show_explains_a_backoff(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'sync.db'}"
    with App(url) as app:

        @app.handler("flaky")
        def flaky(ctx: object) -> int:
            raise ConnectionResetError("the peer hung up")

        # Backoffs of half an hour and more: however slow this machine, `show` is not late.
        app.add_policy(replace(DEFAULT_POLICY.scaled(1000.0), name="patient"))
        queue = app.create_queue("flaky://x", [{}], policy="patient")
        [chunk] = app.manager.list_chunks(queue.id)

        def tried() -> bool:
            return bool(app.manager.list_attempts(chunk.id))

        app.worker(concurrency=1, poll_s=0.05).run(until=tried)
        chunk = app.manager.get_chunk(chunk.id)
    assert chunk.status is ChunkStatus.PENDING and chunk.attempts == 1
    shown = json.loads(run("--db", url, "show", chunk.id, "--json").stdout)
    assert shown["waits_for"].startswith("backoff after a network failure, until ")
    assert shown["attempt_log"][-1]["outcome"] == "retried"
    assert all(ISO_UTC.match(a["finished_at"]) for a in shown["attempt_log"])
    listed = run("--db", url, "chunks").stdout
    assert "next run" in listed and re.search(r"\b(now|in \d+[smhd])\b", listed)
