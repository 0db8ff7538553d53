"""What the dashboard lets in and how it shows what it is given, without a browser (the browser
tests cover a token-holding operator clicking; these cover the rest):

- `chunksync dashboard` binds to loopback unless told otherwise, and answers only loopback Host
  headers (DNS rebinding);
- every action is refused without the token, and a read-only dashboard refuses them all;
- a chunk error or queue name holding HTML or script is escaped in every page that shows it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from chunksync.app import App
from chunksync.retry import DEFAULT_POLICY
from tests.acceptance.web_server import TOKEN, free_port, serve

pytestmark = pytest.mark.timeout(60)

XSS = '<script>window.__xss=1</script><img src=x onerror="alert(1)">'
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def hostile(sqlite_url: str) -> Iterator[tuple[App, str]]:
    """A queue named with HTML whose only chunk died of an error whose text is a script."""
    with App(sqlite_url) as app:
        app.add_policy(replace(DEFAULT_POLICY, name="once"))

        @app.handler("pages")
        def fail(ctx: object) -> int:
            raise ValueError(XSS)

        queue = app.create_queue("pages://x", [{"n": 1}], name=f"<b>{XSS}</b>", max_attempts=1)
        app.worker(poll_s=0.05).run_until_done([queue.id], timeout_s=30)
        [chunk] = app.manager.list_chunks(queue.id)
        assert chunk.last_error is not None and XSS in chunk.last_error
        yield app, chunk.id


def test_html_in_errors_and_names_is_escaped_everywhere(hostile: tuple[App, str]) -> None:
    app, chunk_id = hostile
    with serve(app) as base, httpx.Client(base_url=base) as client:
        for path in ["/", "/queues", "/chunks", "/chunks?status=dead", f"/chunks/{chunk_id}"]:
            page = client.get(path)
            assert page.status_code == 200, path
            assert "<script>window.__xss" not in page.text, path
            assert "<img src=x" not in page.text, path
        detail = client.get(f"/chunks/{chunk_id}").text
        assert "&lt;script&gt;window.__xss=1&lt;/script&gt;" in detail  # shown, as text
        answer = client.get("/api/chunks")
        assert answer.headers["content-type"].startswith("application/json")
        assert XSS in answer.text.replace("\\u003c", "<").replace('\\"', '"')


def test_actions_need_the_token(hostile: tuple[App, str]) -> None:
    app, chunk_id = hostile
    target = f"/api/chunks/{chunk_id}/retry"
    with serve(app) as base, httpx.Client(base_url=base) as client:
        missing = client.post(target)
        assert missing.status_code == 401 and "required" in missing.json()["error"]
        wrong = client.post(target, headers={"Authorization": f"Bearer {TOKEN}x"})
        assert wrong.status_code == 401 and wrong.json()["error"] == "the bearer token is wrong"
        form = client.post(
            "/actions", data={"kind": "chunk", "target": chunk_id, "action": "retry"}
        )
        assert form.status_code in (401, 403)
    with serve(app, token=None) as base, httpx.Client(base_url=base) as client:  # read-only
        for headers in ({}, {"Authorization": f"Bearer {TOKEN}"}):
            assert client.post(target, headers=headers).status_code in (401, 403)
    assert app.manager.get_chunk(chunk_id).status.value == "dead"  # nothing was done


def test_only_loopback_host_names_are_answered(hostile: tuple[App, str]) -> None:
    app, _ = hostile
    with serve(app) as base, httpx.Client(base_url=base) as client:
        assert client.get("/").status_code == 200
        assert client.get("/", headers={"Host": "evil.example.com"}).status_code == 400
        assert client.get("/metrics", headers={"Host": "attacker.test:80"}).status_code == 400


def _listening_address(port: int) -> str | None:
    """The local address a TCP socket listens on for `port`, from /proc/net/tcp (IPv4)."""
    for line in Path("/proc/net/tcp").read_text(encoding="ascii").splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, hex_port = local.split(":")
        if int(hex_port, 16) == port and state == "0A":  # LISTEN
            return ".".join(str(int(address[i : i + 2], 16)) for i in (6, 4, 2, 0))
    return None


def test_the_dashboard_command_binds_to_loopback_by_default(sqlite_url: str) -> None:
    with App(sqlite_url):
        pass
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "CHUNKSYNC_DASHBOARD_TOKEN"}
    command = [sys.executable, "-m", "chunksync", "--db", sqlite_url, "dashboard"]
    proc = subprocess.Popen(
        [*command, "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while _listening_address(port) is None:
            assert proc.poll() is None, proc.communicate(timeout=5)
            assert time.monotonic() < deadline, "the dashboard did not start listening"
            time.sleep(0.05)
        assert _listening_address(port) == "127.0.0.1"
        assert httpx.get(f"http://127.0.0.1:{port}/").status_code == 200
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=15)
    assert "read-only" in out and "Traceback" not in err
