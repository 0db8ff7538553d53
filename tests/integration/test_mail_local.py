"""Maildir and mbox sources end to end: sync, incremental runs, export round trips."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from chunksync.app import App
from chunksync.exceptions import ConfigurationError
from chunksync.sources.mail import MAIL_POLICY, SyncOptions, mail_source
from chunksync.store import MessageStore
from chunksync.store.accounts import account_summaries, resolve_account
from chunksync.store.export import export
from tests.integration.mail_helpers import run_sync, stored

FIXTURES = Path(__file__).parent.parent / "fixtures" / "mail"


def make_maildir(path: Path) -> dict[str, bytes]:
    for sub in ("cur", "new", "tmp"):
        (path / sub).mkdir(parents=True)
    written = {}
    for n, fixture in enumerate(sorted(FIXTURES.glob("*.eml"))):
        name = f"17000000{n:02d}.M{n}P1.test"
        target = path / "cur" / f"{name}:2,S" if n % 2 else path / "new" / name
        target.write_bytes(fixture.read_bytes())
        written[name] = fixture.read_bytes()
    return written


def test_maildir_sync_is_byte_exact_and_incremental(sqlite_app: App, tmp_path: Path) -> None:
    box = tmp_path / "Maildir"
    written = make_maildir(box)
    uri = f"maildir://{box}"
    planned = run_sync(sqlite_app, uri, chunk_size=3)
    assert planned[0].messages == len(written)
    assert planned[0].queue_id is not None
    queue = sqlite_app.manager.get_queue(planned[0].queue_id)
    assert queue.policy == "mail" and queue.max_attempts == MAIL_POLICY.max_attempts == 12
    chunks = sqlite_app.manager.list_chunks(queue.id)
    assert {c.max_attempts for c in chunks} == {12}  # the mail policy's, not the default 5
    assert sorted(stored(sqlite_app).values()) == sorted(written.values())
    source = mail_source(sqlite_app, uri)
    assert source.reconcile(uri).difference == 0

    # Nothing changed: nothing planned.
    assert run_sync(sqlite_app, uri)[0].queue_id is None
    # A new message, a flag change (a rename) and a deletion.
    (box / "new" / "1800000000.M99P1.test").write_bytes(b"Subject: new\r\n\r\nnew\r\n")
    first = next((box / "new").glob("1700000000.*"))
    first.rename(box / "cur" / f"{first.name}:2,FS")
    os.remove(next((box / "cur").glob("1700000001.*")))
    planned = run_sync(sqlite_app, uri)
    assert planned[0].messages == 1
    assert source.reconcile(uri).difference == 0
    rows = list(MessageStore(sqlite_app.backend).iter_messages())
    flagged = [r for r in rows if r["source_key"] == first.name]
    assert flagged[0]["flags"] == "\\Flagged \\Seen"


def test_mbox_sync_append_and_round_trip(sqlite_app: App, tmp_path: Path) -> None:
    path = tmp_path / "archive.mbox"
    messages = [f.read_bytes().replace(b"\r\n", b"\n") for f in sorted(FIXTURES.glob("*.eml"))]
    body = b"".join(
        b"From sender@example.com Mon Jan  1 00:00:%02d 2024\n" % n + m + b"\n"
        for n, m in enumerate(m if m.endswith(b"\n") else m + b"\n" for m in messages)
    )
    path.write_bytes(body)
    uri = f"mbox://{path}"
    run_sync(sqlite_app, uri, chunk_size=2)
    assert mail_source(sqlite_app, uri).reconcile(uri).difference == 0

    with open(path, "ab") as f:
        f.write(b"From late@example.com Tue Jan  2 00:00:00 2024\nSubject: late\n\nlate\n\n")
    planned = run_sync(sqlite_app, uri)
    assert planned[0].messages == 1

    out = tmp_path / "out"
    export(MessageStore(sqlite_app.backend), out, "mbox")
    assert (out / "archive.mbox").read_bytes() == path.read_bytes()


def test_export_maildir_round_trip(sqlite_app: App, tmp_path: Path) -> None:
    box = tmp_path / "Maildir"
    written = make_maildir(box)
    run_sync(sqlite_app, f"maildir://{box}")
    out = tmp_path / "out"
    assert export(MessageStore(sqlite_app.backend), out, "maildir") == len(written)
    exported = {p.name.split(":")[0]: p.read_bytes() for p in (out / "INBOX" / "cur").iterdir()}
    assert exported == written


@pytest.mark.parametrize("uri", ["maildir:///no/such/dir", "mbox:///no/such.mbox"])
def test_missing_local_mailboxes_are_configuration_errors(sqlite_app: App, uri: str) -> None:
    from chunksync.exceptions import ConfigurationError

    with pytest.raises(ConfigurationError):
        run_sync(sqlite_app, uri)


@pytest.mark.parametrize("deletions", ["keep", "mirror"])
def test_maildir_deletions_are_kept_or_mirrored(
    sqlite_app: App, tmp_path: Path, deletions: str
) -> None:
    box = tmp_path / "Maildir"
    written = make_maildir(box)
    uri = f"maildir://{box}"
    options = SyncOptions(deletions=deletions, origin=uri)
    run_sync(sqlite_app, uri, options=options)
    os.remove(next((box / "cur").glob("1700000001.*")))
    run_sync(sqlite_app, uri, options=options)
    assert len(stored(sqlite_app)) == len(written) - 1
    everything = stored(sqlite_app, include_deleted=True)
    assert len(everything) == len(written) - (deletions == "mirror")
    assert mail_source(sqlite_app, uri).reconcile(uri).difference == 0


def test_an_account_is_found_by_its_name_or_listed(sqlite_app: App, tmp_path: Path) -> None:
    store = MessageStore(sqlite_app.backend)
    with pytest.raises(ConfigurationError, match="holds no mail yet"):
        resolve_account(store, "imap://alice@example.com")
    box = tmp_path / "Maildir"
    make_maildir(box)
    uri = f"maildir://{box}"
    run_sync(sqlite_app, uri, options=SyncOptions(origin=uri))
    key = f"maildir:{box}"
    assert resolve_account(store, uri) == key == resolve_account(store, key)
    with pytest.raises(ConfigurationError, match=f"holds no account 'bob': it holds {uri}"):
        resolve_account(store, "bob")
    (summary,) = account_summaries(store)
    assert summary.name == uri and summary.stored == len(stored(sqlite_app))
