"""The IMAP sync under server-side change, against a real Dovecot: a folder renumbered the way
Dovecot renumbers one, expunges in awkward folders, deletions kept or mirrored, moves, folder
patterns and renames."""

from __future__ import annotations

import os
import time

import pytest

from chunksync.app import App
from chunksync.sources.imap import ImapSource
from chunksync.sources.mail import SyncOptions, select_folders
from chunksync.store import MessageStore
from tests.integration.mail_helpers import run_sync, stored
from tests.integration.test_imap_sync import fill, imap_source, message
from tests.servers.dovecot import DovecotServer, Mailbox

pytestmark = pytest.mark.imap

MIRROR = SyncOptions(deletions="mirror")
KEEP = SyncOptions(deletions="keep")


def rows(app: App) -> list[dict[str, object]]:
    return list(MessageStore(app.backend).iter_messages(include_deleted=True))


def live_mirrors_server(app: App, box: Mailbox, folder: str = "INBOX") -> None:
    here = {uid: raw for (f, uid), raw in stored(app).items() if f == folder}
    assert here == box.server_messages(folder)


def lose_uid_list(source: ImapSource, box: Mailbox, dovecot: DovecotServer, files: str) -> None:
    """What Dovecot does when its UID list (and index) of a Maildir is lost: on the next
    access it renumbers every message. Sessions are ended first, as a restart would."""
    source.close()
    dovecot.doveadm("kick", box.user, check=False)
    time.sleep(1.1)  # a new UIDVALIDITY is the clock's second: make it differ
    for name in os.listdir(box.maildir):
        if name == "dovecot-uidlist" or (files == "all" and name.startswith("dovecot")):
            os.remove(box.maildir / name)


@pytest.mark.parametrize("files", ["uidlist", "all"])
def test_a_renumbered_folder_is_rekeyed_not_stored_twice(
    sqlite_app: App, mailbox: Mailbox, dovecot: DovecotServer, files: str
) -> None:
    fill(mailbox, 40)
    twin = message(7)  # a second copy of message 7: same Message-ID, same size
    mailbox.deliver(twin)
    for n in (98, 99):
        mailbox.deliver(message(n, with_id=False))
    uri = mailbox.uri()
    source = imap_source(sqlite_app, uri)
    run_sync(sqlite_app, uri, source=source)
    before, old_validity = mailbox.server_messages(), mailbox.uidvalidity()
    lose_uid_list(source, mailbox, dovecot, files)
    after = mailbox.server_messages()
    assert sorted(after.values()) == sorted(before.values())
    renumbered = mailbox.uidvalidity() != old_validity or set(after) != set(before)
    assert renumbered, "Dovecot did not renumber the folder"

    planned = run_sync(sqlite_app, uri, source=source)
    # Only the two messages without a Message-ID are downloaded again (bounded).
    assert planned[0].messages <= 2
    live_mirrors_server(sqlite_app, mailbox)
    assert len(rows(sqlite_app)) == 43  # nothing kept twice, not even as deleted
    assert source.reconcile(uri).difference == 0
    assert run_sync(sqlite_app, uri, source=source)[0].queue_id is None  # healed for good


AWKWARD = ["Spaces and [brackets]", 'Quote "this"', "Entwürfe", "Parent/Child [x]"]


def make_folder(box: Mailbox, name: str, raws: list[bytes]) -> str:
    """Create `name` (its '/' as the server's delimiter) with `raws`; its name as listed."""
    with box.client() as c:
        delimiter = c.list_folders()[0][1]
        delimiter = delimiter.decode() if isinstance(delimiter, bytes) else delimiter
        listed = name.replace("/", delimiter)
        parent = name.split("/")[0]
        if "/" in name and not c.folder_exists(parent):
            c.create_folder(parent)
        c.create_folder(listed)
        for raw in raws:
            c.append(listed, raw)
    return listed


def expunge(box: Mailbox, folder: str, which: slice) -> None:
    with box.client() as c:
        c.select_folder(folder)
        c.delete_messages(c.search()[which])
        c.expunge()


@pytest.mark.parametrize("name", AWKWARD)
def test_an_expunge_of_one_of_two_identical_messages_is_seen(
    sqlite_app: App, mailbox: Mailbox, name: str
) -> None:
    raw = message(1)
    folder = make_folder(mailbox, name, [raw, raw])
    source = imap_source(sqlite_app, mailbox.uri())
    (uri,) = select_folders(source, mailbox.uri(), include=[folder])
    run_sync(sqlite_app, uri, options=MIRROR)
    assert len(stored(sqlite_app)) == 2
    expunge(mailbox, folder, slice(0, 1))  # the first: before the survivor's UID
    run_sync(sqlite_app, uri, options=MIRROR)
    live_mirrors_server(sqlite_app, mailbox, folder)
    assert len(rows(sqlite_app)) == 1
    assert source.reconcile(uri).difference == 0


def test_an_expunge_is_seen_whatever_the_name_or_the_bytes(
    sqlite_app: App, mailbox: Mailbox
) -> None:
    """The class of the bug: a deletion at either end of a search window, in a plain folder
    of different messages, and every message of a window gone."""
    fill(mailbox, 6)
    uri = mailbox.uri()
    run_sync(sqlite_app, uri, options=MIRROR)
    expunge(mailbox, "INBOX", slice(-1, None))  # the last: UIDNEXT does not move
    run_sync(sqlite_app, uri, options=MIRROR)
    live_mirrors_server(sqlite_app, mailbox)
    expunge(mailbox, "INBOX", slice(0, None))  # all of them
    run_sync(sqlite_app, uri, options=MIRROR)
    assert rows(sqlite_app) == []


def test_deletions_are_kept_marked_by_default(sqlite_app: App, mailbox: Mailbox) -> None:
    fill(mailbox, 5)
    uri = mailbox.uri()
    run_sync(sqlite_app, uri)
    went = time.time()
    expunge(mailbox, "INBOX", slice(0, 2))
    run_sync(sqlite_app, uri)  # KEEP is the default
    live_mirrors_server(sqlite_app, mailbox)
    kept = [r for r in rows(sqlite_app) if r["deleted_at"] is not None]
    assert len(kept) == 2 and len(rows(sqlite_app)) == 5
    assert all(abs(float(str(r["deleted_at"])) - went) < 60 for r in kept)
    assert imap_source(sqlite_app, uri).reconcile(uri).difference == 0
    run_sync(sqlite_app, uri, options=MIRROR)  # mirror later: nothing left to forget here
    expunge(mailbox, "INBOX", slice(0, 1))
    run_sync(sqlite_app, uri, options=MIRROR)
    assert len(rows(sqlite_app)) == 4  # the mirrored deletion is gone, the kept ones stay


def test_a_move_between_folders_is_stored_once(sqlite_app: App, mailbox: Mailbox) -> None:
    fill(mailbox, 4)
    make_folder(mailbox, "Archive", [message(50)])
    source = imap_source(sqlite_app, mailbox.uri())
    uris = select_folders(source, mailbox.uri(), every=True)
    run_sync(sqlite_app, uris[0], uris=uris)
    assert len(rows(sqlite_app)) == 5
    for there, back in (("INBOX", "Archive"), ("Archive", "INBOX")):  # both sync orders
        with mailbox.client() as c:
            c.select_folder(there)
            c.move(c.search()[:1], back)
        run_sync(sqlite_app, uris[0], uris=uris)
        assert len(rows(sqlite_app)) == 5, f"a move from {there} was stored as new mail"
        assert all(r["deleted_at"] is None for r in rows(sqlite_app))
        for folder in ("INBOX", "Archive"):
            live_mirrors_server(sqlite_app, mailbox, folder)


def test_folder_patterns_utf7_names_and_renames(sqlite_app: App, mailbox: Mailbox) -> None:
    fill(mailbox, 2)
    for name in ("Archive/2024", "Archive/2025", "Spam", "Entwürfe"):
        make_folder(mailbox, name, [message(hash(name) % 1000)])
    source = imap_source(sqlite_app, mailbox.uri())
    with mailbox.client() as c:
        wire = c._imap.list()[1]
        assert any(b"Entw&APw-rfe" in raw for raw in wire)  # modified UTF-7 on the wire
    names = [n for n, _ in source.folder_names(mailbox.uri())]
    assert "Entwürfe" in names  # shown decoded
    chosen = select_folders(source, mailbox.uri(), include=["INBOX", "Archive.*"], exclude=["*5"])
    assert [source.folder_of(u) for u in chosen] == ["Archive.2024", "INBOX"]
    uris = select_folders(source, mailbox.uri(), every=True, exclude=["Spam"])
    run_sync(sqlite_app, uris[0], uris=uris)
    expected = {"INBOX", "Archive.2024", "Archive.2025", "Entwürfe"}
    assert {f for f, _ in stored(sqlite_app)} == expected

    with mailbox.client() as c:
        c.rename_folder("Entwürfe", "Drafts [old]")
    uris = select_folders(source, mailbox.uri(), every=True, exclude=["Spam"])
    planned = run_sync(sqlite_app, uris[0], uris=uris)
    assert sum(p.messages for p in planned) == 0  # followed, not downloaded again
    assert {f for f, _ in stored(sqlite_app, include_deleted=True)} == {
        "INBOX", "Archive.2024", "Archive.2025", "Drafts [old]"
    }  # fmt: skip
    live_mirrors_server(sqlite_app, mailbox, "Drafts [old]")
