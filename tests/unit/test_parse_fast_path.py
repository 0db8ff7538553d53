"""The message parser's fast path gives exactly what the email package gives, or declines.

Every head is parsed both ways, `parse_message` (fast path first) against `_parse_slow` (the
email package's compat32 parser), on generated well-formed heads, which the fast path must take,
and on deliberately malformed ones, which it must leave to the email package.
"""

from __future__ import annotations

import random
import string
from pathlib import Path

import pytest
from benchmarks.bench_imap_sync import message
from hypothesis import given, settings
from hypothesis import strategies as st

from chunksync.store.parse import (
    _MULTIPART,
    HEADER_COLUMNS,
    MAX_PARSE_BYTES,
    _parse_fast,
    _parse_slow,
    header_end,
    parse_message,
)

FIXTURES = Path(__file__).parent.parent / "fixtures" / "mail"
FAST_FIXTURES = {"bare_lf.eml", "nul_bytes.eml", "plain.eml", "unknown_charset.eml"}

NAME_CHARS = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) != ":")
KNOWN_NAMES = [*HEADER_COLUMNS.values(), "Content-Type", "Received", "X-Mailer", "MIME-Version"]
ENCODED_WORDS = [
    "=?utf-8?q?caf=C3=A9?=",
    "=?UTF-8?B?Y2Fmw6k=?=",
    "=?iso-8859-1?q?caf=E9?= =?utf-8?q?_au_lait?=",
    "=?x-klingon?q?Qapla=E9?=",  # unknown charset: a defect
    "=?utf-8?b?!!!?=",  # bad base64
    "=?utf-8?q?unterminated",
    "=?",
]
# a line's text: printable ASCII, blanks and the control characters that are not line breaks
TEXT_CHARS = string.printable.replace("\r", "").replace("\n", "") + "\x00\x01\x1c\x1d\x1e\x7f"


def _mixed_case(draw: st.DrawFn, name: str) -> str:
    flips = draw(st.lists(st.booleans(), min_size=len(name), max_size=len(name)))
    return "".join(c.swapcase() if flip else c for c, flip in zip(name, flips, strict=True))


@st.composite
def names(draw: st.DrawFn) -> str:
    if draw(st.booleans()):
        return _mixed_case(draw, draw(st.sampled_from(KNOWN_NAMES)))
    return draw(st.text(NAME_CHARS, min_size=1, max_size=12))


TEXTS = st.lists(
    st.one_of(st.text(TEXT_CHARS, max_size=20), st.sampled_from(ENCODED_WORDS)), max_size=4
).map("".join)
BLANKS = st.text(" \t", max_size=3)


@st.composite
def fields(draw: st.DrawFn) -> list[str]:
    """One field as its lines without line endings: `Name:value` and its continuations."""
    first = f"{draw(names())}:{draw(BLANKS)}{draw(TEXTS)}"
    folds = draw(st.lists(st.tuples(st.text(" \t", min_size=1, max_size=2), TEXTS), max_size=3))
    return [first, *(blank + text for blank, text in folds)]


@st.composite
def plain_heads(draw: st.DrawFn) -> list[str]:
    """The lines of a well-formed head, some fields repeated in another case."""
    head = draw(st.lists(fields(), min_size=1, max_size=10))
    for _ in range(draw(st.integers(0, 2))):
        lines = list(draw(st.sampled_from(head)))
        name = lines[0].partition(":")[0]
        lines[0] = f"{_mixed_case(draw, name)}:{draw(TEXTS)}"
        head.insert(draw(st.integers(0, len(head))), lines)
    return [line for field_lines in head for line in field_lines]


BODIES = st.sampled_from([b"", b"body\r\n", b"body\n\nmore\n", b"--x\r\n\r\nFrom me\r\n", b"\xff"])


@st.composite
def plain_messages(draw: st.DrawFn) -> bytes:
    eol = draw(st.sampled_from(["\r\n", "\n"]))
    head = "".join(line + eol for line in draw(plain_heads())) + eol
    return head.encode("ascii") + draw(BODIES)


ENVELOPE = "From someone@example.com Mon Jan  1 00:00:00 2024"
INSERTED = {  # a line put among the fields
    "no_colon": "no colon on this line",
    "empty_name": ":x",
    "space_before_colon": "Subject : spaced",
    "eight_bit": "Subject: caf\xe9",
    "envelope_inside": ENVELOPE,
    "multipart": "Content-Type: multipart/mixed; boundary=x",
}
FIRST = {
    "leading_continuation": " continued from nothing",
    "envelope_first": ENVELOPE,
    "blank_first": "",
}
SPOILS = [*INSERTED, *FIRST, "bare_cr", "mixed_endings", "no_separator"]


@st.composite
def spoiled_messages(draw: st.DrawFn) -> bytes:
    """A well-formed head made malformed in one way."""
    eol = draw(st.sampled_from(["\r\n", "\n"]))
    lines = draw(plain_heads())
    at = draw(st.integers(0, len(lines) - 1))
    kind = draw(st.sampled_from(SPOILS))
    if kind in INSERTED:
        lines.insert(at, INSERTED[kind])
    elif kind in FIRST:
        lines.insert(0, FIRST[kind])
    elif kind == "bare_cr":
        lines[at] += "\rafter a bare CR"
    endings = [eol] * len(lines)
    if kind == "mixed_endings":
        endings[at] = "\n" if eol == "\r\n" else "\r\n"
    head = "".join(line + end for line, end in zip(lines, endings, strict=True))
    if kind == "no_separator":  # and no body that could hold one
        return head.encode("latin-1")
    return (head + eol).encode("latin-1") + b"--x\r\n\r\npart\r\n"


@given(plain_messages())
@settings(max_examples=300)
def test_well_formed_heads_take_the_fast_path_with_the_same_result(raw: bytes) -> None:
    fast = _parse_fast(raw)
    if not _MULTIPART.search(raw[: header_end(raw)]):  # a field named e.g. "multipart/x"
        assert fast is not None
    assert parse_message(raw) == _parse_slow(raw)


@given(spoiled_messages())
@settings(max_examples=300)
def test_malformed_heads_are_left_to_the_email_package(raw: bytes) -> None:
    assert _parse_fast(raw) is None
    assert parse_message(raw) == _parse_slow(raw)


@given(st.binary(max_size=300))
@settings(max_examples=300)
def test_any_bytes_give_the_same_result_both_ways(raw: bytes) -> None:
    assert parse_message(raw) == _parse_slow(raw)


@given(st.lists(st.sampled_from([b"\r", b"\n", b"\r\n", b"a", b":", b" "]), max_size=40))
@settings(max_examples=300)
def test_header_end_is_the_end_of_the_first_separator(pieces: list[bytes]) -> None:
    raw = b"".join(pieces)
    ends = [i + n for i, n in ((raw.find(b"\r\n\r\n"), 4), (raw.find(b"\n\n"), 2)) if i >= 0]
    assert header_end(raw) == (min(ends) if ends else -1)


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("*.eml")), ids=lambda path: path.name)
def test_fixtures_give_the_same_result_both_ways(path: Path) -> None:
    raw = path.read_bytes()
    assert (_parse_fast(raw) is not None) == (path.name in FAST_FIXTURES)
    assert parse_message(raw) == _parse_slow(raw)
    lf = raw.replace(b"\r\n", b"\n")
    assert parse_message(lf) == _parse_slow(lf)


@pytest.mark.parametrize(
    "raw",
    [
        b"subject: first\r\nSUBJECT: second\r\nSubject: third\r\n\r\n",
        b"Subject:\r\nFrom: \t \r\nTo:\r\n \r\n\r\n",  # empty values, a blank continuation
        b"Subject: \t folded\r\n\tover\r\n  three lines \r\n\r\nbody",
        b"Subject: =?utf-8?q?caf=C3=A9?=\n =?utf-8?q?_cr=C3=A8me?=\n\n",
        b"Subject: a\x00b\x0bc\x0cd\x1ce\r\n\r\n",
        b"Message-ID: <x@example.com>\r\n\r\n\r\n",  # the IMAP planner's HEADER.FIELDS answer
        b"Content-Type:\r\nmultipart/x: y\r\n\r\n",  # _MULTIPART matches across the lines
        b"Content-Type: text/plain\r\n\r\n--x\r\nContent-Type: multipart/mixed\r\n",
    ],
)
def test_explicit_heads_give_the_same_result_both_ways(raw: bytes) -> None:
    assert parse_message(raw) == _parse_slow(raw)


def test_the_benchmark_message_takes_the_fast_path() -> None:
    raw = message(random.Random(1), 5)
    fast = _parse_fast(raw)
    assert fast is not None and fast == _parse_slow(raw)
    assert fast.headers["subject"] == "benchmark message 5" and fast.defects == []


def test_first_occurrence_wins_and_encoded_words_are_decoded() -> None:
    raw = b"SUBJECT: =?utf-8?q?caf=C3=A9?=\r\n\t au lait\r\nsubject: second\r\n\r\n"
    parsed = _parse_fast(raw)
    assert parsed is not None and parsed.headers["subject"] == "café au lait"
    assert parsed == _parse_slow(raw)


def test_a_message_past_the_size_limit_is_left_to_the_email_package() -> None:
    raw = b"Subject: big\r\n\r\n" + b"x" * MAX_PARSE_BYTES
    assert _parse_fast(raw) is None
    parsed = parse_message(raw)
    assert parsed == _parse_slow(raw) and "body_not_parsed_too_large" in parsed.defects
