"""The mail store through the real CLI: a difference that a sync cannot heal is named and
repaired, deletions kept or mirrored, folder patterns, and what the store holds listed."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from tests.acceptance.test_mail_cli import run
from tests.servers.dovecot import Mailbox

pytestmark = pytest.mark.imap


def raw(n: int) -> bytes:
    return f"Subject: s {n}\r\nMessage-ID: <s{n}@x>\r\n\r\nbody {n}\r\n".encode()


def db_path(url: str) -> str:
    return url.removeprefix("sqlite:///")


def test_a_difference_that_survives_is_named_and_repaired(
    sqlite_url: str, mailbox: Mailbox
) -> None:
    for n in range(5):
        mailbox.deliver(raw(n))
    env = {"PW": mailbox.password}
    sync = ["sync", mailbox.uri(), "--password-env", "PW"]
    assert run(sqlite_url, *sync, env=env).returncode == 0
    with closing(sqlite3.connect(db_path(sqlite_url))) as db, db:
        # A row the server never had, past its last UID: no ordinary sync looks there.
        db.execute(
            "INSERT INTO mail_messages SELECT account, folder, uidvalidity, 9999, size, sha256,"
            " raw, internaldate, flags, labels, gm_msgid, modseq, source_key, envelope,"
            " '<bogus@x>', from_addr, to_addr, cc_addr, subject, date_header, in_reply_to, refs,"
            " defects, stored_at, updated_at, deleted_at FROM mail_messages WHERE uid = 1"
        )
    for _ in range(2):  # the difference survives a second run, and says so each time
        done = run(sqlite_url, *sync, env=env)
        assert done.returncode == 1 and "Traceback" not in done.stderr
        said = " ".join(done.stderr.split())
        assert "INBOX" in said and "UID 9999" in said and "--repair" in said, said
    repaired = run(sqlite_url, *sync, "--repair", "--deletions", "mirror", env=env)
    assert repaired.returncode == 0, repaired.stderr
    with closing(sqlite3.connect(db_path(sqlite_url))) as db:
        uids = sorted(r[0] for r in db.execute("SELECT uid FROM mail_messages"))
    assert uids == [1, 2, 3, 4, 5]
    assert run(sqlite_url, *sync, env=env).returncode == 0


def test_deletions_export_and_what_the_store_holds(
    sqlite_url: str, mailbox: Mailbox, tmp_path: Path
) -> None:
    for n in range(4):
        mailbox.deliver(raw(n))
    mailbox.deliver(raw(10), folder="Spam")
    env = {"PW": mailbox.password}
    sync = ["sync", mailbox.uri(), "--password-env", "PW", "--folder", "*", "--exclude", "Spam"]
    assert run(sqlite_url, *sync, env=env).returncode == 0
    with mailbox.client() as c:
        c.select_folder("INBOX")
        c.delete_messages(c.search()[:1])
        c.expunge()
    done = run(sqlite_url, *sync, env=env)  # --deletions keep, the default
    assert done.returncode == 0, done.stderr

    origin = f"imap://{mailbox.user}@127.0.0.1:{mailbox.server.port}"
    accounts = run(sqlite_url, "accounts")
    assert accounts.returncode == 0 and origin in accounts.stdout
    assert "Spam" not in run(sqlite_url, "folders", origin).stdout
    folders = run(sqlite_url, "folders", mailbox.uri())
    line = next(x for x in folders.stdout.splitlines() if "INBOX" in x)
    # on the server, stored and still there, kept after the server deleted it
    assert [c.strip() for c in line.split("│")[3:6]] == ["3", "3", "1"], folders.stdout

    exports = iter(range(10))

    def export(*extra: str) -> int:
        out = tmp_path / f"export{next(exports)}"
        done = run(sqlite_url, "export", str(out), "--account", origin, *extra)
        assert done.returncode == 0, done.stderr
        return len(list((out / "INBOX" / "cur").iterdir()))

    assert export() == 3  # as the server has it
    assert export("--include-deleted") == 4

    unknown = run(sqlite_url, "export", str(tmp_path / "none"), "--account", "bob@elsewhere")
    assert unknown.returncode == 1 and "Traceback" not in unknown.stderr
    said = " ".join(unknown.stderr.split())
    assert "holds no account 'bob@elsewhere'" in said and origin in said, said

    mirrored = run(sqlite_url, *sync, "--deletions", "mirror", "--repair", env=env)
    assert mirrored.returncode == 0, mirrored.stderr
    assert export("--include-deleted") == 3
    bad = run(sqlite_url, *sync, "--deletions", "sometimes", env=env)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
