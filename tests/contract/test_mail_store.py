"""The message store (on every backend) and the parsing beneath it: idempotent, byte-exact,
never losing mail."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from chunksync.app import App
from chunksync.store import FolderKey, MailMessage, MessageStore, parse_message
from chunksync.store.parse import MAX_PARSE_BYTES

FIXTURES = Path(__file__).parent.parent / "fixtures" / "mail"
KEY = FolderKey("alice@mail.example.com", "INBOX", 1700000000)


@pytest.fixture
def store(app: App) -> MessageStore:
    return MessageStore(app.backend)  # on every backend


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def test_headers_are_parsed_and_decoded() -> None:
    raw = (
        b"From: =?utf-8?q?Ren=C3=A9e?= <r@example.com>\r\nTo: a@example.com,\r\n b@example.com\r\n"
        b"Subject: =?utf-8?b?w6l0w6k=?=\r\nMessage-ID: <m1@example.com>\r\n"
        b"In-Reply-To: <m0@example.com>\r\nReferences: <a@x> <m0@example.com>\r\n\r\nbody\r\n"
    )
    parsed = parse_message(raw)
    assert parsed.headers["from_addr"] == "Renée <r@example.com>"
    assert parsed.headers["to_addr"] == "a@example.com, b@example.com"
    assert parsed.headers["subject"] == "été"
    assert parsed.headers["in_reply_to"] == "<m0@example.com>"
    assert parsed.headers["refs"] == "<a@x> <m0@example.com>"
    assert parsed.defects == []


@pytest.mark.parametrize(
    ("name", "defect"),
    [
        ("no_separator.eml", "no_header_body_separator"),
        ("broken_mime.eml", "CloseBoundaryNotFoundDefect"),
        ("eightbit_headers.eml", "8bit_headers"),
        ("unknown_charset.eml", "unknown_charset:Subject"),
    ],
)
def test_malformed_messages_are_stored_raw_with_their_defects(
    store: MessageStore, name: str, defect: str
) -> None:
    raw = fixture(name)
    assert store.put(KEY, [MailMessage(7, raw)]) == 1
    row = store.get(KEY, 7)
    assert row is not None
    assert bytes(row["raw"]) == raw
    assert row["sha256"] == hashlib.sha256(raw).hexdigest()
    assert defect in json.loads(row["defects"])


def test_every_fixture_is_stored_byte_exact(store: MessageStore) -> None:
    names = sorted(p.name for p in FIXTURES.glob("*.eml"))
    store.put(KEY, [MailMessage(n + 1, fixture(name)) for n, name in enumerate(names)])
    for n, name in enumerate(names):
        row = store.get(KEY, n + 1)
        assert row is not None and bytes(row["raw"]) == fixture(name), name


def test_a_huge_message_keeps_its_headers_and_is_marked(store: MessageStore) -> None:
    raw = b"Subject: big\r\nMessage-ID: <big@x>\r\n\r\n" + b"x" * (MAX_PARSE_BYTES + 10)
    store.put(KEY, [MailMessage(1, raw)])
    row = store.get(KEY, 1)
    assert row is not None and len(bytes(row["raw"])) == len(raw)
    assert row["subject"] == "big" and "body_not_parsed_too_large" in row["defects"]


def test_the_upsert_is_idempotent(store: MessageStore) -> None:
    raw = fixture("plain.eml")
    store.put(KEY, [MailMessage(1, raw, ["\\Seen"])])
    store.put(KEY, [MailMessage(1, raw, ["\\Seen", "\\Flagged"])])  # a retried chunk
    assert store.count(KEY) == (1, len(raw))
    row = store.get(KEY, 1)
    assert row is not None and row["flags"] == "\\Flagged \\Seen"
    assert row["message_id"] == "<plain@example.com>"


def test_flags_and_deletions(store: MessageStore) -> None:
    store.put(KEY, [MailMessage(u, fixture("plain.eml")) for u in (1, 2, 3)])
    store.update_flags(KEY, [(2, "\\Answered", 9, None)])
    store.delete(KEY, [3])
    assert [r["uid"] for r in store.window(KEY, 1, 10)] == [1, 2]
    assert store.window(KEY, 2, 2)[0]["flags"] == "\\Answered"


def test_a_plans_count_leaves_out_what_went_and_other_keys(store: MessageStore) -> None:
    # count_messages counts the key's messages in its primary key, less those marked gone
    # (through their own index, which holds every folder's): count's figure, without bytes.
    other = FolderKey(KEY.account, "Archive", KEY.uidvalidity)
    older = FolderKey(KEY.account, KEY.folder, KEY.uidvalidity - 1)
    for key, n in ((KEY, 6), (other, 3), (older, 2)):
        store.put(key, [MailMessage(u, f"Message-ID: <{key.folder}{u}@x>\r\n\r\nB".encode())
                        for u in range(1, n + 1)])  # fmt: skip
    store.gone(KEY, [2, 5], mirror=False)  # kept, marked gone
    store.gone(other, [1], mirror=False)
    store.gone(older, [1], mirror=True)  # forgotten
    for key, left in ((KEY, 4), (other, 2), (older, 1)):
        assert store.count_messages(key) == store.count(key)[0] == left
    assert store.count_messages(FolderKey(KEY.account, "Nowhere", 1)) == 0


def test_rekey_moves_matched_messages_and_audits(app: App, store: MessageStore) -> None:
    a = b"Message-ID: <a@x>\r\n\r\nA"
    b = b"Message-ID: <b@x>\r\n\r\nB"
    store.put(KEY, [MailMessage(1, a), MailMessage(2, b), MailMessage(3, b"no id")])
    new = FolderKey(KEY.account, KEY.folder, KEY.uidvalidity + 1)
    server = [(10, "<a@x>", len(a)), (11, "<b@x>", len(b) + 1), (12, None, 5)]
    moved, unmatched = store.rekey(KEY, new, server)
    assert (moved, unmatched) == (1, [11, 12])
    assert store.count(KEY) == (0, 0)
    assert [r["uid"] for r in store.window(new, 0, 100)] == [10]
    audit = app.manager.list_audit()
    assert audit[0].action == "uidvalidity_changed" and audit[0].details["to_download"] == 2


def test_pages_cover_every_message_once(store: MessageStore) -> None:
    store.put(KEY, [MailMessage(u, b"Subject: x\r\n\r\n") for u in range(1, 451)])
    other = FolderKey(KEY.account, "Archive", 5)
    store.put(other, [MailMessage(u, b"Subject: y\r\n\r\n") for u in range(1, 5)])
    seen = [(r["folder"], r["uid"]) for r in store.iter_messages(KEY.account)]
    assert len(seen) == 454 == len(set(seen))
