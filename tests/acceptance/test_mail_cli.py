"""The mail commands through the real CLI (subprocess): sync, export, demo-mail, mistakes."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest

from chunksync.commands.mail import EXTRA_PROCESS_MESSAGES
from tests.chaos.proxy import FaultyProxy
from tests.servers.dovecot import Mailbox, start_dovecot

CHUNKSYNC = str(Path(sys.executable).parent / "chunksync")


def run(db: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CHUNKSYNC, "--db", db, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "120", **(env or {})},
        check=False,
    )


@pytest.mark.imap
def test_sync_an_imap_folder_then_export_it(
    sqlite_url: str, mailbox: Mailbox, tmp_path: Path
) -> None:
    raws = [
        f"Subject: cli {n}\r\nMessage-ID: <c{n}@x>\r\n\r\nbody {n}\r\n".encode() for n in range(30)
    ]
    for raw in raws:
        mailbox.deliver(raw)
    env = {"ALICE_PW": mailbox.password}
    done = run(sqlite_url, "sync", mailbox.uri(), "--password-env", "ALICE_PW", env=env)
    assert done.returncode == 0, done.stderr
    assert "INBOX" in done.stdout and "30" in done.stdout and mailbox.password not in done.stdout
    again = run(sqlite_url, "sync", mailbox.uri(), "--password-env", "ALICE_PW", env=env)
    assert again.returncode == 0 and "nothing to do" in again.stdout

    out = tmp_path / "export"
    exported = run(sqlite_url, "export", str(out), "--format", "maildir")
    assert exported.returncode == 0, exported.stderr
    files = sorted(p.read_bytes() for p in (out / "INBOX" / "cur").iterdir())
    assert files == sorted(raws)


@pytest.mark.imap
def test_sync_in_two_processes_stores_each_message_once(sqlite_url: str, mailbox: Mailbox) -> None:
    filler = b"x" * 2000
    raws = [
        f"Subject: p {n}\r\nMessage-ID: <p{n}@x>\r\n\r\n".encode() + filler + b"\r\n"
        for n in range(300)
    ]
    for raw in raws:
        mailbox.deliver(raw)
    # A slow link (100 kB/s per connection): the helper process is up long before the end.
    proxy = FaultyProxy("127.0.0.1", mailbox.server.port, base_rate=100_000).start()
    uri = f"imap://{mailbox.user}@127.0.0.1:{proxy.port}/INBOX"
    env = {"ALICE_PW": mailbox.password}
    args = ["--password-env", "ALICE_PW", "--processes", "2", "--chunk-size", "10"]
    try:
        done = run(sqlite_url, "sync", uri, *args, env=env)
    finally:
        proxy.stop()
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and mailbox.password not in done.stderr
    path = sqlite_url.removeprefix("sqlite:///")
    with closing(sqlite3.connect(path)) as db:
        stored = sorted(bytes(r[0]) for r in db.execute("SELECT raw FROM mail_messages"))
        workers = {r[0] for r in db.execute("SELECT DISTINCT worker_id FROM attempts")}
        pids = {w.split(":")[1] for w in workers}
    assert stored == sorted(raws)  # every message, byte-exact, once
    assert len(pids) == 2, workers  # the helper process did its share


@pytest.mark.imap
def test_a_large_imap_sync_runs_a_process_more_than_the_cores(
    sqlite_url: str, mailbox: Mailbox
) -> None:
    """Past EXTRA_PROCESS_MESSAGES an IMAP sync gets one process more than the cores (at most
    the connection cap, 4 here). The extra helper is started after planning, beyond those the
    command line prestarted, and does its share; each message is stored once."""
    cur = mailbox.maildir / "cur"
    for n in range(EXTRA_PROCESS_MESSAGES):
        (cur / f"1700000000.M{n}P1.test:2,S").write_bytes(
            b"Message-ID: <%d@x>\r\n\r\n%d\r\n" % (n, n)
        )
    subprocess.run(["chown", "-R", "mail:mail", str(mailbox.maildir)], check=True)
    env = {"ALICE_PW": mailbox.password}
    done = run(sqlite_url, "sync", mailbox.uri(), "--password-env", "ALICE_PW", env=env)
    assert done.returncode == 0, done.stderr
    path = sqlite_url.removeprefix("sqlite:///")
    with closing(sqlite3.connect(path)) as db:
        stored = db.execute(
            "SELECT count(*), count(DISTINCT message_id) FROM mail_messages"
        ).fetchone()
        workers = {r[0] for r in db.execute("SELECT DISTINCT worker_id FROM attempts")}
    assert stored == (EXTRA_PROCESS_MESSAGES, EXTRA_PROCESS_MESSAGES)
    assert len({w.split(":")[1] for w in workers}) == min((os.cpu_count() or 1) + 1, 4), workers


@pytest.mark.imap
@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--password-env", "NOT_SET_X"], "NOT_SET_X is not set"),
    ],
)
def test_imap_mistakes_are_one_sentence(
    sqlite_url: str, mailbox: Mailbox, args: list[str], says: str
) -> None:
    done = run(sqlite_url, "sync", mailbox.uri(), *args, env={"WRONG_PW": "nope-nope"})
    assert done.returncode == 1
    assert says in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) <= 2


@pytest.mark.imap
def test_a_wrong_password_is_one_sentence(sqlite_url: str) -> None:
    server = start_dovecot()  # its own: failed logins slow every later login from the IP
    try:
        box = server.add_user()
        done = run(sqlite_url, "sync", box.uri(), "--password-env", "PW", env={"PW": "nope-nope"})
    finally:
        server.close()
    assert done.returncode == 1 and "authentication failed" in done.stderr
    assert "Traceback" not in done.stderr and "nope-nope" not in done.stderr


@pytest.mark.imap
def test_a_missing_folder_is_one_sentence(sqlite_url: str, mailbox: Mailbox) -> None:
    done = run(
        sqlite_url,
        "sync",
        mailbox.uri("NoSuchFolder"),
        "--password-env",
        "PW",
        env={"PW": mailbox.password},
    )
    assert done.returncode == 1 and "does not exist" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("uri", "says"),
    [
        ("imap://alice:secret-pw-1@example.com/INBOX", "holds a password"),
        ("imap://alice@127.0.0.1:1/INBOX", "cannot reach"),
        ("maildir:///no/such/Maildir", "not a Maildir"),
        ("ftp://example.com/x", "not a mailbox"),
    ],
)
def test_user_mistakes_are_one_sentence(sqlite_url: str, uri: str, says: str) -> None:
    done = run(sqlite_url, "sync", uri, "--password-env", "PW", env={"PW": "x-password"})
    assert done.returncode == 1, done.stdout
    assert says in done.stderr and "Traceback" not in done.stderr
    assert "secret-pw-1" not in done.stderr


def test_demo_mail_syncs_a_sample_maildir(sqlite_url: str, tmp_path: Path) -> None:
    done = run(sqlite_url, "demo-mail", str(tmp_path / "Maildir"), "--messages", "120")
    assert done.returncode == 0, done.stderr
    assert "120" in done.stdout and "difference" in done.stdout


def test_mbox_sync_and_export_round_trip(sqlite_url: str, tmp_path: Path) -> None:
    mbox = tmp_path / "old.mbox"
    mbox.write_bytes(
        b"From a@x Mon Jan  1 00:00:00 2024\nSubject: one\n\n>From here\n\n"
        b"From b@x Mon Jan  1 00:00:01 2024\nSubject: two\n\nbody\n\n"
    )
    assert run(sqlite_url, "sync", f"mbox://{mbox}").returncode == 0
    out = tmp_path / "out"
    assert run(sqlite_url, "export", str(out), "--format", "mbox").returncode == 0
    assert (out / "old.mbox").read_bytes() == mbox.read_bytes()


def test_sync_and_export_print_json(sqlite_url: str, tmp_path: Path) -> None:
    """--json: one document on stdout, no progress bar or table around it (docs/cli.md)."""
    import json

    mbox = tmp_path / "old.mbox"
    mbox.write_bytes(
        b"From a@x Mon Jan  1 00:00:00 2024\nSubject: one\n\nbody\n\n"
        b"From b@x Mon Jan  1 00:00:01 2024\nSubject: two\n\nbody\n\n"
    )
    done = run(sqlite_url, "sync", f"mbox://{mbox}", "--json")
    assert done.returncode == 0, done.stderr
    synced = json.loads(done.stdout)
    assert synced["difference"] == 0 and synced["dead_chunks"] == 0
    assert [(f["on_source"], f["stored"], f["difference"]) for f in synced["folders"]] == [
        (2, 2, 0)
    ]
    again = json.loads(run(sqlite_url, "sync", f"mbox://{mbox}", "--json").stdout)
    assert again["folders"][0]["stored"] == 2  # nothing to do: still one document
    exported = run(sqlite_url, "export", str(tmp_path / "out"), "--format", "mbox", "--json")
    assert json.loads(exported.stdout) == {
        "exported": 2,
        "out": str(tmp_path / "out"),
        "format": "mbox",
    }


def helpers_left(marker: str) -> list[int]:
    """Processes still alive that carry `marker` in their environment (the command's helpers)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes()
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker.encode() in environ and state != "Z":
            found.append(int(pid))
    return found


@pytest.mark.parametrize("processes", ["3", "1"])
def test_sync_leaves_no_helper_behind(sqlite_url: str, tmp_path: Path, processes: str) -> None:
    """`chunksync sync` starts its helpers before its imports: those a small mailbox does not
    need, and all of them when the command fails, are stopped before it exits."""
    marker = f"CHUNKSYNC_TEST_MARKER={tmp_path.name}"
    env = {"CHUNKSYNC_TEST_MARKER": tmp_path.name}
    mbox = tmp_path / "small.mbox"
    mbox.write_bytes(b"From a@x Mon Jan  1 00:00:00 2024\nSubject: one\n\nbody\n\n")
    done = run(sqlite_url, "sync", f"mbox://{mbox}", "--processes", processes, env=env)
    assert done.returncode == 0, done.stderr
    assert "1" in done.stdout and helpers_left(marker) == []
    missing = "maildir:///no/such/Maildir"
    failed = run(sqlite_url, "sync", missing, "--processes", processes, env=env)
    assert failed.returncode == 1 and "not a Maildir" in failed.stderr
    assert "Traceback" not in failed.stderr and helpers_left(marker) == []
