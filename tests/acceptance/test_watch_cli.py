"""`chunksync sync --watch` through the real CLI: new mail stored and posted signed while it
runs, SIGTERM ends it cleanly, and its mistakes are one sentence each."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.acceptance.test_mail_cli import run
from tests.servers.dovecot import Mailbox
from tests.servers.webhook_receiver import webhook_receiver

CHUNKSYNC = str(Path(sys.executable).parent / "chunksync")
SECRET = "cli-watch-secret-5b2e"
EVENTUALLY_SECONDS = 60.0


@pytest.mark.imap
def test_watch_stores_posts_and_stops_on_sigterm(sqlite_url: str, mailbox: Mailbox) -> None:
    mailbox.deliver(b"Subject: before\r\nMessage-ID: <b@x>\r\n\r\nbefore\r\n")
    env = {**os.environ, "PW": mailbox.password, "HOOK_SECRET": SECRET, "COLUMNS": "120"}
    with webhook_receiver() as receiver:
        args = ["--db", sqlite_url, "sync", mailbox.uri(), "--password-env", "PW", "--watch"]
        args += ["--webhook", receiver.url, "--webhook-secret-env", "HOOK_SECRET"]
        proc = subprocess.Popen(
            [CHUNKSYNC, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )
        try:
            deadline = time.monotonic() + EVENTUALLY_SECONDS
            while not receiver.events() and time.monotonic() < deadline:
                with mailbox.client() as other:  # until the watch is up: each one announced
                    other.append("INBOX", f"Subject: new\r\n\r\n{time.time()}\r\n".encode())
                time.sleep(1.0)
            receiver.wait_for(lambda events: bool(events))
        finally:
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "watching 1 folder(s)" in out and "stopped watching" in out
    assert "message.new INBOX uid" in out
    assert "Traceback" not in err and SECRET not in out + err
    assert receiver.all_signed(SECRET)
    stored_uids = {int(e["data"]["uid"]) for e in receiver.events("message.new")}
    assert 1 not in stored_uids  # synced before watching: no event


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--webhook", "http://127.0.0.1:1/x"], "go with --watch"),
        (["--watch", "--webhook", "ftp://example.com/x"], "must be http:// or https://"),
        (
            ["--watch", "--webhook", "http://127.0.0.1:1/x", "--webhook-secret-env", "NO_SUCH_VAR"],
            "NO_SUCH_VAR is not set",
        ),
        (["--watch", "--webhook-secret-env", "PW"], "needs --webhook"),
    ],
)
def test_watch_mistakes_are_one_sentence(sqlite_url: str, args: list[str], says: str) -> None:
    done = run(
        sqlite_url,
        "sync",
        "imap://me@127.0.0.1:1/INBOX",
        "--password-env",
        "PW",
        *args,
        env={"PW": "x-password"},
    )
    assert done.returncode == 1, done.stdout
    assert says in done.stderr and "Traceback" not in done.stderr


def test_watch_needs_imap(sqlite_url: str, tmp_path: Path) -> None:
    done = run(sqlite_url, "sync", f"maildir://{tmp_path}", "--watch")
    assert done.returncode == 1 and "--watch needs an imap://" in done.stderr
