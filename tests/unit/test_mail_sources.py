"""Pure parts of the mail sources: URIs, credentials, UID sets, mbox and Maildir names."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from chunksync.exceptions import ConfigurationError
from chunksync.redact import redact
from chunksync.sources.imap import Credentials, parse_imap_uri
from chunksync.sources.imap.planner import fetch_payloads, uid_set
from chunksync.sources.maildir import parse_filename, uid_for
from chunksync.sources.mbox import scan, split_segment
from chunksync.store import FolderKey


def test_imap_uri_defaults() -> None:
    local = parse_imap_uri("imap://alice@127.0.0.1:1143/Archive%2F2020")
    assert (local.user, local.port, local.folder) == ("alice", 1143, "Archive/2020")
    assert not local.starttls and local.account == "alice@127.0.0.1:1143"
    remote = parse_imap_uri("imap://bob@mail.example.com")
    assert remote.starttls and remote.folder == "INBOX" and remote.account == "bob@mail.example.com"
    tls = parse_imap_uri("imaps://bob@mail.example.com/INBOX?connections=15")
    assert tls.implicit_tls and tls.port == 993 and tls.connections == 15


@pytest.mark.parametrize(
    "uri",
    ["imap://host/INBOX", "imap://a@host:xx/INBOX", "imap://a@h/?connections=0", "pop://a@h/"],
)
def test_bad_imap_uris_are_one_sentence(uri: str) -> None:
    with pytest.raises(ConfigurationError):
        parse_imap_uri(uri)


def test_a_password_in_the_uri_is_refused_and_redacted() -> None:
    with pytest.raises(ConfigurationError) as caught:
        parse_imap_uri("imap://alice:hunter2secret@mail.example.com/INBOX")
    assert "hunter2secret" not in str(caught.value)
    assert "hunter2secret" not in redact("LOGIN alice hunter2secret and hunter2secret")


def test_credentials_from_env_file_and_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MY_PW", "env-password-1")
    assert Credentials(password_env="MY_PW").secret("a").value == "env-password-1"
    (tmp_path / "pw").write_text("file-password-2\n")
    assert Credentials(password_file=str(tmp_path / "pw")).secret("a").value == "file-password-2"
    cmd = f"{sys.executable} -c \"print('cmd-password-3')\""
    assert Credentials(password_cmd=cmd).secret("a").value == "cmd-password-3"
    token = Credentials(oauth2_cmd=cmd).secret("a")
    assert token.kind == "oauth2"
    assert "cmd-password-3" not in redact("token cmd-password-3")


def test_missing_credentials_say_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    with pytest.raises(ConfigurationError, match="NOT_SET_ANYWHERE is not set"):
        Credentials(password_env="NOT_SET_ANYWHERE").secret("a@h")
    with pytest.raises(ConfigurationError, match="--password-env"):
        Credentials().secret("a@h")
    with pytest.raises(ConfigurationError, match="give one of"):
        Credentials(password_env="A", password_file="B")
    with pytest.raises(ConfigurationError, match="failed"):
        Credentials(password_cmd="false").secret("a@h")


def test_uid_sets_and_chunks() -> None:
    assert uid_set([7, 1, 2, 3, 9, 10]) == "1:3,7,9:10"
    key = FolderKey("a", "INBOX", 1)
    windows = iter([[1, 2, 3], [4, 5, 9], [10]])
    payloads = list(fetch_payloads(key, windows, 3))
    assert [(p["uids"], p["count"]) for p in payloads] == [("1:3", 3), ("4:5,9", 3), ("10:10", 1)]


def test_a_million_message_folder_plans_in_bounded_chunks() -> None:
    def windows():  # what windowed UID SEARCH yields, 20,000 UIDs at a time
        for lo in range(1, 1_000_001, 20_000):
            yield list(range(lo, lo + 20_000))

    payloads = list(fetch_payloads(FolderKey("a", "INBOX", 1), windows(), 500))
    assert len(payloads) == 2000 and sum(p["count"] for p in payloads) == 1_000_000
    assert payloads[-1]["uids"] == "999501:1000000"


def test_mbox_scan_and_split(tmp_path: Path) -> None:
    path = tmp_path / "box.mbox"
    first = b"From a@x Mon Jan  1 00:00:00 2024\nSubject: one\n\n>From quoted\n"
    second = b"From b@x Mon Jan  1 00:00:01 2024\nSubject: two\n\nbody\n"
    path.write_bytes(first + b"\n" + second + b"\n")
    segments = scan(path)
    assert segments == [(0, len(first) + 1), (len(first) + 1, len(second) + 1)]
    envelope, raw = split_segment(path.read_bytes()[: segments[0][1]])
    assert envelope.startswith("From a@x") and raw == b"Subject: one\n\n>From quoted\n"


def test_not_an_mbox(tmp_path: Path) -> None:
    path = tmp_path / "x.mbox"
    path.write_bytes(b"Subject: not an mbox\n\nFrom here on\n")
    with pytest.raises(ConfigurationError, match="not an mbox"):
        scan(path)


def test_maildir_names_give_stable_uids_and_flags() -> None:
    unique, flags = parse_filename("1700000000.M1P2.host:2,SRF")
    assert unique == "1700000000.M1P2.host"
    assert flags == ("\\Answered", "\\Flagged", "\\Seen")
    assert uid_for(unique) == uid_for("1700000000.M1P2.host") != uid_for("other")
    assert 1 <= uid_for(unique) < 2**63


def test_the_fast_fetch_parser_agrees_with_imapclient() -> None:
    from imapclient.response_parser import parse_fetch_response

    from chunksync.sources.imap.connection import parse_fetch

    body = b"Subject: x\r\n\r\nhello\r\n"
    raw = [
        (
            b"1 (UID 7 RFC822.SIZE 21 FLAGS (\\Seen $Label) "
            b'INTERNALDATE " 1-Jan-2024 10:00:00 +0100" MODSEQ (12) BODY[] {21}',
            body,
        ),
        b")",
        b"2 (UID 9 RFC822.SIZE 4096)",
    ]
    fast = parse_fetch(raw)
    slow = parse_fetch_response(raw, False, True)
    assert fast is not None
    for uid in (7, 9):
        for item, value in slow[uid].items():
            if item != b"SEQ":
                assert fast[uid][item] == value, item
    assert parse_fetch([(b"1 (UID 1 X-GM-LABELS (a) BODY[] {1}", b"x"), b")"]) is None


@pytest.mark.parametrize(
    "text",
    [
        b" 1-Jan-2024 10:00:00 +0100",
        b"05-Dec-2026 02:59:38 -0730",
        b"05-Dec-2026 02:59:38 +0000",
        b"29-Feb-2024 23:59:59 -1200",
        b"05-Dec-2026 02:59:38 +1400",
    ],
)
def test_internaldate_reads_as_imapclient_reads(text: bytes) -> None:
    from imapclient.datetime_util import parse_to_datetime

    from chunksync.sources.imap.connection import internaldate

    for _ in range(2):  # the second time with its offset's timezone made already
        ours, theirs = internaldate(text), parse_to_datetime(text, normalise=False)
        assert ours == theirs
        assert ours is not None and ours.utcoffset() == theirs.utcoffset()


def test_an_internaldate_that_is_no_date_is_none() -> None:
    from chunksync.sources.imap.connection import internaldate

    assert internaldate(b"31-Feb-2026 02:59:38 +0000") is None  # no such day
    assert internaldate(b"05-Xyz-2026 02:59:38 +0000") is None  # no such month
    assert internaldate(b"05-Dec-2026 02:59:38 +2500") is None  # no such offset, twice
    assert internaldate(b"05-Dec-2026 02:59:38 +2500") is None
