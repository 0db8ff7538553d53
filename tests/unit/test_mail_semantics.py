"""The pure parts of the mail sync's semantics: folder patterns, account names, renumbering
matches, and what a difference says."""

from __future__ import annotations

import pytest

from chunksync.exceptions import ConfigurationError
from chunksync.sources.imap.diff import Difference, match_renumbered
from chunksync.sources.mail import SyncOptions, account_origin, folder_matches


@pytest.mark.parametrize(
    ("name", "include", "exclude", "chosen"),
    [
        ("INBOX", [], [], True),
        ("inbox", ["INBOX"], [], True),  # INBOX is case-insensitive, other names are not
        ("Archive/2024", ["Archive/*"], [], True),
        ("Archive", ["Archive/*"], [], False),
        ("archive/2024", ["Archive/*"], [], False),
        ("Spam", [], ["Spam"], False),
        ("Archive/Spam", ["Archive/*"], ["*Spam"], False),
        ("Spaces and [brackets]", ["Spaces and [brackets]"], [], True),  # a name, not a glob
        ("Entwürfe", ["Entw*"], [], True),
    ],
)
def test_folder_patterns(name: str, include: list[str], exclude: list[str], chosen: bool) -> None:
    assert folder_matches(name, include, exclude) is chosen


def test_accounts_are_named_by_the_uri_without_folder_or_options() -> None:
    assert account_origin("imaps://alice@mail.example.com/INBOX?connections=2") == (
        "imaps://alice@mail.example.com"
    )
    assert account_origin("IMAP://bob@host:1143/Spaces%20and%20%5Bb%5D") == "imap://bob@host:1143"
    assert account_origin("maildir:///home/a/Maildir") == "maildir:///home/a/Maildir"


def test_an_unknown_deletion_policy_is_one_sentence() -> None:
    with pytest.raises(ConfigurationError, match="use keep or mirror"):
        SyncOptions(deletions="sometimes")
    assert SyncOptions().deletions == "keep" and SyncOptions(deletions="mirror").mirror


def test_renumbered_messages_match_by_message_id_and_size_twins_included() -> None:
    gone = [
        {"uid": 1, "message_id": "<a@x>", "size": 10},
        {"uid": 2, "message_id": "<a@x>", "size": 10},  # an identical twin
        {"uid": 3, "message_id": None, "size": 20},  # no Message-ID: cannot be matched
        {"uid": 4, "message_id": "<b@x>", "size": 30},
    ]
    server = [(101, "<a@x>", 10), (102, "<a@x>", 10), (103, None, 20), (104, "<b@x>", 31)]
    assert match_renumbered(gone, server) == [(1, 101), (2, 102)]


def test_a_difference_names_its_uids() -> None:
    found = Difference([{"uid": u} for u in range(1, 14)], [99])
    said = found.describe("Spaces and [brackets]")
    assert said.startswith("Spaces and [brackets]: 13 stored but no longer on the server")
    assert "UID 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 and 3 more" in said
    assert "1 on the server but not stored (UID 99)" in said
    assert not Difference()
