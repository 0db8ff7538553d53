"""The message store's semantics on every backend: deletions kept or mirrored, moves between
folders, renumbering, renames, the summaries `accounts` and `folders` show."""

from __future__ import annotations

import time

import pytest

from chunksync.app import App
from chunksync.store import FolderKey, MailMessage, MessageStore
from chunksync.store import store as store_module
from chunksync.store.accounts import account_summaries, folder_summaries

INBOX = FolderKey("alice@mail.example.com", "INBOX", 1700000000)
ARCHIVE = FolderKey("alice@mail.example.com", "Archive", 1700000001)


@pytest.fixture
def store(app: App) -> MessageStore:
    return MessageStore(app.backend)  # on every backend


def mail(n: int, *, with_id: bool = True) -> bytes:
    head = f"Subject: m{n}\r\n" + (f"Message-ID: <m{n}@x>\r\n" if with_id else "")
    return f"{head}\r\nbody {n}\r\n".encode()


def uids(store: MessageStore, key: FolderKey, *, include_deleted: bool = False) -> list[int]:
    rows = store.iter_messages(key.account, key.folder, include_deleted=include_deleted)
    return [int(r["uid"]) for r in rows if int(r["uidvalidity"]) == key.uidvalidity]


def test_gone_messages_are_kept_marked_or_mirrored(store: MessageStore) -> None:
    store.put(INBOX, [MailMessage(u, mail(u)) for u in (1, 2, 3)])
    before = time.time()
    store.gone(INBOX, [1], mirror=False)
    assert uids(store, INBOX) == [2, 3] and uids(store, INBOX, include_deleted=True) == [1, 2, 3]
    row = store.get(INBOX, 1)
    assert row is not None and float(row["deleted_at"]) >= before - 5
    assert store.count(INBOX)[0] == 2  # the reconciliation counts what the server has
    store.gone(INBOX, [2], mirror=True)
    assert uids(store, INBOX, include_deleted=True) == [1, 3]
    store.forget_kept(INBOX.account, INBOX.folder)
    assert uids(store, INBOX, include_deleted=True) == [3]


def test_a_move_is_stored_once_in_either_order(store: MessageStore) -> None:
    store.put(INBOX, [MailMessage(1, mail(1)), MailMessage(2, mail(2, with_id=False))])
    # The old folder first: kept as deleted, then forgotten when the copy arrives elsewhere.
    store.gone(INBOX, [1], mirror=False)
    store.put(ARCHIVE, [MailMessage(10, mail(1))])
    assert uids(store, INBOX, include_deleted=True) == [2]
    # The new folder first: the old folder's copy is forgotten, not kept, when it goes.
    store.put(INBOX, [MailMessage(3, mail(1))])
    store.gone(ARCHIVE, [10], mirror=False)
    assert uids(store, ARCHIVE, include_deleted=True) == []
    # Without a Message-ID a move cannot be told from a deletion: kept.
    store.put(ARCHIVE, [MailMessage(11, mail(2, with_id=False))])
    store.gone(INBOX, [2], mirror=False)
    assert uids(store, INBOX, include_deleted=True) == [2, 3]


def test_a_move_in_a_large_batch_is_seen_and_another_accounts_copy_is_kept(
    store: MessageStore,
) -> None:
    """A kept copy is looked for only in the account of the batch (and only when the account
    keeps any): a batch of 100 holding the moved message forgets its old copy; the same bytes
    stored under another account leave that account's kept copy alone."""
    store.put(INBOX, [MailMessage(u, mail(u)) for u in (1, 2)])
    store.gone(INBOX, [1, 2], mirror=False)
    store.put(ARCHIVE, [MailMessage(100 + n, mail(n)) for n in range(3, 102)] + [
        MailMessage(500, mail(1))
    ])  # fmt: skip
    assert uids(store, INBOX, include_deleted=True) == [2]
    other = FolderKey("bob@mail.example.com", "INBOX", 1700000002)
    store.put(other, [MailMessage(7, mail(2))])
    assert uids(store, INBOX, include_deleted=True) == [2]
    assert uids(store, ARCHIVE) == [*range(103, 202), 500]


def test_renumber_rename_and_summaries(store: MessageStore) -> None:
    store.put(INBOX, [MailMessage(u, mail(u)) for u in (1, 2, 3)])
    store.save_folder(INBOX, uidnext=4, highestmodseq=None, messages=3, origin="imap://a@h")
    store.renumber(INBOX, [(1, 101), (2, 102)])
    assert uids(store, INBOX) == [3, 101, 102]
    got = store.get(INBOX, 101)
    assert got is not None and bytes(got["raw"]) == mail(1)
    store.gone(INBOX, [3], mirror=False)
    digests = store.deleted_digests(INBOX, 0, 10)
    assert list(digests.values()) == [3]

    store.rename_folder(INBOX.account, "INBOX", "Old [mail]")
    renamed = FolderKey(INBOX.account, "Old [mail]", INBOX.uidvalidity)
    assert uids(store, renamed, include_deleted=True) == [3, 101, 102]
    (folder,) = folder_summaries(store)
    assert (folder.folder, folder.stored, folder.deleted, folder.on_server) == (
        "Old [mail]", 2, 1, 3
    )  # fmt: skip
    (account,) = account_summaries(store)
    assert account.name == "imap://a@h" and account.account == INBOX.account
    assert account.stored == 2 and account.deleted == 1 and account.synced_at is not None


def test_other_uidvalidities_are_retired(store: MessageStore) -> None:
    old = FolderKey(INBOX.account, INBOX.folder, 5)
    store.put(old, [MailMessage(1, mail(1))])
    store.put(INBOX, [MailMessage(1, mail(1))])
    store.retire_other_uidvalidities(INBOX, mirror=False)
    assert uids(store, old) == [] and uids(store, old, include_deleted=True) == [1]
    store.retire_other_uidvalidities(INBOX, mirror=True)
    assert uids(store, old, include_deleted=True) == [] and uids(store, INBOX) == [1]


def test_a_move_is_seen_through_merged_keys_a_rename_and_a_renumbering(
    store: MessageStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The copies a move leaves are found whether their Message-ID keys were merged already
    (MERGE_ROWS: every two stored here) or still wait to be, after their folder was renamed and
    their UIDs renumbered; a message re-stored under another Message-ID is nobody's copy."""
    monkeypatch.setattr(store_module, "MERGE_ROWS", 2)
    store.put(ARCHIVE, [MailMessage(10 + n, mail(n)) for n in (1, 2, 3)])  # merged
    store.put(ARCHIVE, [MailMessage(14, mail(4))])  # waits
    store.put(ARCHIVE, [MailMessage(15, mail(5))])  # 2 waiting: both merged
    store.put(ARCHIVE, [MailMessage(16, mail(6))])  # waits
    store.rename_folder(ARCHIVE.account, "Archive", "Archive 2024")
    moved = FolderKey(ARCHIVE.account, "Archive 2024", ARCHIVE.uidvalidity)
    store.renumber(moved, [(12, 112)])
    store.put(moved, [MailMessage(13, mail(99))])  # 13 now holds another message
    store.put(INBOX, [MailMessage(n, mail(n)) for n in range(1, 8)])
    store.gone(INBOX, range(1, 8), mirror=False)
    # 1, 2 (renumbered), 4, 5, 6 moved and are forgotten; 3's copy was replaced; 7 has none.
    assert uids(store, INBOX, include_deleted=True) == [3, 7]
    assert uids(store, moved) == [11, 13, 14, 15, 16, 112]
