"""The choice of a way to listen, folder names in commands, and the events read from two looks
at a folder: pure logic, no I/O."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chunksync.sources.imap.listen import Mode, choose_mode, connections_of, quoted
from chunksync.sources.imap.watch import differences
from chunksync.store import FolderKey


@pytest.mark.parametrize(
    ("caps", "folders", "cap", "prefer", "expected"),
    [
        ({"IDLE", "NOTIFY"}, 10, 4, None, Mode.NOTIFY),
        ({"IDLE"}, 3, 4, None, Mode.IDLE),
        ({"IDLE"}, 4, 4, None, Mode.POLL),  # no connection left to sync with
        ({"IDLE", "NOTIFY"}, 1, 1, None, Mode.POLL),  # a cap of one: that one syncs
        (set(), 1, 4, None, Mode.POLL),
        ({"IDLE", "NOTIFY"}, 2, 4, Mode.IDLE, Mode.IDLE),
        ({"IDLE"}, 2, 4, Mode.NOTIFY, Mode.POLL),  # not offered: polling
    ],
)
def test_the_way_to_listen_fits_the_server_and_the_cap(
    caps: set[str], folders: int, cap: int, prefer: Mode | None, expected: Mode
) -> None:
    names = [f"Folder {n}" for n in range(folders)]
    mode = choose_mode(frozenset(caps), names, cap, prefer)
    assert mode is expected
    assert connections_of(mode, folders) <= max(0, cap - 1)


def test_notify_only_for_ascii_folder_names() -> None:
    caps = frozenset({"IDLE", "NOTIFY"})
    assert choose_mode(caps, ["INBOX", "Entwürfe"], 4) is Mode.IDLE
    assert choose_mode(caps, ["INBOX", "Entwürfe", "a", "b"], 4) is Mode.POLL
    assert choose_mode(caps, ["INBOX", "Entwürfe"], 4, Mode.NOTIFY) is Mode.POLL


def test_folder_names_are_quoted_in_modified_utf7() -> None:
    assert quoted('Re: "x"') == '"Re: \\"x\\""'
    assert quoted("Entwürfe") == '"Entw&APw-rfe"'


class FakeStore:
    def get(self, key: FolderKey, uid: int) -> dict[str, Any]:
        return {"size": 10 * uid, "message_id": f"<{uid}@x>", "subject": f"s{uid}"}


def test_two_looks_at_a_folder_give_new_deleted_and_flag_events() -> None:
    key = FolderKey("me@h", "INBOX", 7)
    before = {1: "", 2: "\\Seen", 3: ""}
    after = {1: "\\Flagged", 3: "", 4: "\\Seen"}
    events = differences(FakeStore(), key, before, after)  # type: ignore[arg-type]
    assert [(e["event"], e["data"]["uid"]) for e in events] == [
        ("message.new", 4),
        ("message.deleted", 2),
        ("message.flags", 1),
    ]
    assert events[0]["data"]["subject"] == "s4" and events[0]["data"]["flags"] == ["\\Seen"]
    assert events[2]["data"]["added"] == ["\\Flagged"] and events[2]["data"]["removed"] == []
    again = differences(FakeStore(), key, before, after)  # type: ignore[arg-type]
    assert [e["eventId"] for e in again] == [e["eventId"] for e in events]
    assert all(json.dumps(e) for e in events)
