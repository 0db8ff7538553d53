"""`read_responses` reads a command's responses as imaplib's own reader would: both are run
against the same scripted server over a real socket, and must agree on everything they give,
store and raise."""

from __future__ import annotations

import imaplib
from typing import Any

import pytest

from chunksync.sources.imap.connection import read_responses
from tests.servers.scripted_imap import scripted_server

BODY = b"Subject: x\r\n\r\nhello\r\n"

SCRIPTS: dict[str, bytes] = {
    "fetch-with-untagged-between": (
        b"* 1 FETCH (UID 7 FLAGS (\\Seen) BODY[] {%d}\r\n" % len(BODY)
        + BODY
        + b")\r\n* 3 EXISTS\r\n* 1 RECENT\r\n* OK [THROTTLED] slow down\r\n"
        b"* 2 FETCH (UID 9 RFC822.SIZE 4096)\r\n"
        b"* 3 FETCH (UID 10 BODY[] {5}\r\nabcde FLAGS ())\r\n"
        b"{tag} OK [THROTTLED] Fetch completed.\r\n"
    ),
    "two-literals-in-one-response": (
        b"* 1 FETCH (UID 7 BODY[HEADER] {3}\r\nabc BODY[] {4}\r\nwxyz)\r\n{tag} OK done\r\n"
    ),
    "nothing-fetched": b"{tag} OK [UNAVAILABLE] nothing here\r\n",
    "refused": b"* 4 EXPUNGE\r\n{tag} NO [SERVERBUG] Internal error\r\n",
    "bad": b"{tag} BAD Error in IMAP command\r\n",
    "bye-then-close": b"* 1 FETCH (UID 7)\r\n* BYE Server shutting down.\r\n",
    "eof-in-a-literal": b"* 1 FETCH (UID 7 BODY[] {100}\r\nshort",
    "eof-mid-response": b"* 1 FETCH (UID 7)\r\n",
}


def outcome(script: bytes, ours: bool) -> dict[str, Any]:
    """What one reader gives, stores and raises for the script."""
    with scripted_server(script) as port:
        imap = imaplib.IMAP4("127.0.0.1", port)
        try:
            imap.state = "SELECTED"  # as after LOGIN and SELECT, which the script skips
            imap.untagged_responses.clear()
            tag = imap._command("UID", "FETCH", "1:*", "(UID BODY[])")
            try:
                if ours:
                    typ, data, fetched = read_responses(imap, tag, "FETCH")
                else:
                    typ, data = imap._command_complete("FETCH", tag)
                    fetched = imap.untagged_responses.pop("FETCH", [])
            except imaplib.IMAP4.error as exc:
                return {"raised": type(exc), "pending": tag in imap.tagged_commands}
            stored = {k: list(v) for k, v in imap.untagged_responses.items()}
            return {"typ": typ, "data": data, "fetched": fetched, "stored": stored}
        finally:
            imap.shutdown()


@pytest.mark.parametrize("name", list(SCRIPTS))
def test_reads_as_imaplib_reads(name: str) -> None:
    theirs = outcome(SCRIPTS[name], ours=False)
    ours = outcome(SCRIPTS[name], ours=True)
    if "raised" in theirs:
        assert ours["raised"] is theirs["raised"]
    else:
        assert ours == theirs


def test_fetch_data_is_in_the_shape_the_parser_takes() -> None:
    got = outcome(SCRIPTS["fetch-with-untagged-between"], ours=True)
    assert got["typ"] == "OK"
    assert got["fetched"][0] == (b"1 (UID 7 FLAGS (\\Seen) BODY[] {%d}" % len(BODY), BODY)
    assert got["fetched"][1] == b")"
    assert got["stored"]["EXISTS"] == [b"3"] and got["stored"]["THROTTLED"] == [b"", b""]


def test_parts_are_handed_over_whole_once_their_bodies_reach_the_size() -> None:
    """With `on_part`, FETCH responses go out in parts as their literals add up, each response
    whole (a literal and the rest of its line together); other responses are stored as ever."""
    parts: list[list[Any]] = []
    with scripted_server(SCRIPTS["fetch-with-untagged-between"]) as port:
        imap = imaplib.IMAP4("127.0.0.1", port)
        try:
            imap.state = "SELECTED"
            imap.untagged_responses.clear()
            tag = imap._command("UID", "FETCH", "1:*", "(UID BODY[])")
            typ, _, rest = read_responses(imap, tag, "FETCH", part_bytes=5, on_part=parts.append)
            stored = dict(imap.untagged_responses)
        finally:
            imap.shutdown()
    assert typ == "OK"
    # The first body reaches 5 bytes: a part; the size-only response waits for the next body.
    assert parts == [
        [(b"1 (UID 7 FLAGS (\\Seen) BODY[] {%d}" % len(BODY), BODY), b")"],
        [b"2 (UID 9 RFC822.SIZE 4096)", (b"3 (UID 10 BODY[] {5}", b"abcde"), b" FLAGS ())"],
    ]
    assert rest == [] and stored["EXISTS"] == [b"3"]
