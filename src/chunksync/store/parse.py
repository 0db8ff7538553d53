"""Read the headers of a raw RFC 822 message, and say what is wrong with it, without ever failing.

The store keeps the raw bytes whatever happens; parsing only adds the searchable headers and a
list of defects (the email package's own defect classes, plus ours: `no_header_body_separator`,
`8bit_header:<Name>`, `unknown_charset:<Name>`, `body_not_parsed_too_large`, `unparseable:...`).

Most mail has a plainly well-formed head: 7-bit, single part, one line ending throughout, every
line a named field or a continuation. Such a head is checked and read by regular expressions
(`_parse_fast`), which give exactly what the email package's compat32 parser would, at a
fraction of its cost; any other message goes through the email package (`_parse_slow`).
"""

from __future__ import annotations

import email.header
import email.parser
import email.policy
import re
from dataclasses import dataclass, field
from email.message import Message

MAX_PARSE_BYTES = 16 * 1024 * 1024  # past this, only the header block is parsed
MAX_HEADER_CHARS = 4096  # a stored header value longer than this is cut (the raw keeps it all)
MAX_DEFECTS = 50

# column name -> header name
HEADER_COLUMNS: dict[str, str] = {
    "message_id": "Message-ID",
    "from_addr": "From",
    "to_addr": "To",
    "cc_addr": "Cc",
    "subject": "Subject",
    "date_header": "Date",
    "in_reply_to": "In-Reply-To",
    "refs": "References",
}

_FULL = email.parser.BytesParser(policy=email.policy.compat32)
_HEADERS_ONLY = email.parser.BytesHeaderParser(policy=email.policy.compat32)
_EIGHT_BIT = re.compile(rb"[\x80-\xff]")
_MULTIPART = re.compile(rb"^content-type:\s*multipart/", re.IGNORECASE | re.MULTILINE)
_ESCAPED = re.compile("[\udc80-\udcff]")

# The fast path's grammar, over the head decoded as Latin-1 (one character a byte). A field name
# is what the email package's headerRE accepts before the colon, but never empty (an empty name
# is a defect); "From " cannot match it (a space), so an envelope line falls back too. A line's
# text is 7-bit with no CR and no LF, so a bare CR, a line ending of the other style or an 8-bit
# byte anywhere in the head sends the message to the slow path.
_NAME = r"[\x21-\x39\x3b-\x7e]+"
_TEXT = r"[\x00-\x09\x0b\x0c\x0e-\x7f]*+"


def _plain_head(eol: str) -> re.Pattern[str]:
    """A whole head ending its lines with `eol`: fields, their continuations, the blank line."""
    return re.compile(rf"(?:{_NAME}:{_TEXT}{eol}(?:[ \t]{_TEXT}{eol})*+)++{eol}")


_PLAIN_CRLF_HEAD = _plain_head("\r\n")
_PLAIN_LF_HEAD = _plain_head("\n")
# One field of a plain head: its name, and its value as compat32 stores it: the blanks after
# the colon dropped, continuation lines kept with their line breaks, the last line break cut
# (the value's text holds no CR or LF, so this is its rstrip("\r\n")).
_FIELD = re.compile(rf"({_NAME}):[ \t]*+({_TEXT}(?:\r?\n[ \t]{_TEXT})*+)\r?\n")
_FIELD_KEYS = [(column, name, name.lower()) for column, name in HEADER_COLUMNS.items()]


@dataclass(slots=True)
class ParsedMessage:
    headers: dict[str, str | None] = field(default_factory=dict)
    defects: list[str] = field(default_factory=list)


def header_end(raw: bytes) -> int:
    """The offset just past the header block's blank line, or -1 when there is none."""
    # The earlier of the two separators wins. Searching first for the one of the first line's
    # ending, and for the other only before it, spares a scan of the whole body.
    eol = raw.find(b"\n")
    crlf = raw[eol - 1 : eol] == b"\r"
    first, second = (b"\r\n\r\n", b"\n\n") if crlf else (b"\n\n", b"\r\n\r\n")
    at = raw.find(first)
    end = at + len(first) if at >= 0 else len(raw)
    other = raw.find(second, 0, end)
    if other >= 0:
        return other + len(second)
    return end if at >= 0 else -1


def parse_message(raw: bytes) -> ParsedMessage:
    """Headers and defects of `raw`; never raises."""
    parsed = _parse_fast(raw)
    return _parse_slow(raw) if parsed is None else parsed


def _parse_fast(raw: bytes) -> ParsedMessage | None:
    """What `_parse_slow` gives, for a plainly well-formed single-part head; None for any other.

    Such a head gives the email package no defect to report, and us none but those of the
    header values, which both paths find in `_clean`; being 7-bit, it needs no `_ESCAPED` check.
    """
    end = header_end(raw)
    if end < 0 or len(raw) > MAX_PARSE_BYTES:
        return None
    head = raw[:end].decode("latin-1")
    plain = _PLAIN_CRLF_HEAD if head.endswith("\r\n\r\n") else _PLAIN_LF_HEAD
    if plain.fullmatch(head) is None:
        return None
    # The slow path's own test, on the bytes (a str pattern's \s would match more), behind a
    # cheaper one that rules out most heads
    if "multipart/" in head.lower() and _MULTIPART.search(raw[:end]):
        return None
    # Message.get gives the first field of that name, whatever its case
    fields = {name.lower(): value for name, value in reversed(_FIELD.findall(head))}
    parsed = ParsedMessage()
    headers, defects = parsed.headers, parsed.defects
    for column, name, key in _FIELD_KEYS:
        text = fields.get(key)
        headers[column] = None if text is None else _clean(text, name, defects)
    del parsed.defects[MAX_DEFECTS:]
    return parsed


def _parse_slow(raw: bytes) -> ParsedMessage:
    """Headers and defects of any `raw`, by the email package; never raises."""
    parsed = ParsedMessage(headers=dict.fromkeys(HEADER_COLUMNS))
    end = header_end(raw)
    if end < 0:
        parsed.defects.append("no_header_body_separator")
    if _EIGHT_BIT.search(raw, 0, end if end >= 0 else len(raw)):
        parsed.defects.append("8bit_headers")
    try:
        head = raw[: end if end > 0 else MAX_PARSE_BYTES]
        if len(raw) > MAX_PARSE_BYTES:
            parsed.defects.append("body_not_parsed_too_large")
            msg = _HEADERS_ONLY.parsebytes(head)
        elif end < 0 or _MULTIPART.search(head):
            msg = _FULL.parsebytes(raw)  # MIME structure to check: boundaries, parts
        else:
            msg = _HEADERS_ONLY.parsebytes(head)  # a single part: the body holds no defect
    except Exception as exc:  # the parser should not raise, but a crash must not lose mail
        parsed.defects.append(f"unparseable:{type(exc).__name__}")
        return parsed
    _collect_defects(msg, parsed.defects)
    for column, name in HEADER_COLUMNS.items():
        parsed.headers[column] = _header(msg, name, parsed.defects)
    del parsed.defects[MAX_DEFECTS:]
    return parsed


def _collect_defects(msg: Message, defects: list[str]) -> None:
    try:
        for part in msg.walk():
            for defect in part.defects:
                name = type(defect).__name__
                if name not in defects:
                    defects.append(name)
    except Exception as exc:
        defects.append(f"unparseable:{type(exc).__name__}")


def _header(msg: Message, name: str, defects: list[str]) -> str | None:
    try:
        value = msg.get(name)
    except Exception:
        defects.append(f"bad_header:{name}")
        return None
    if value is None:
        return None
    text = str(value)
    if _ESCAPED.search(text):  # raw 8-bit bytes in a header
        defects.append(f"8bit_header:{name}")
        return _unfold(text.encode("ascii", "surrogateescape").decode("utf-8", "replace"))
    return _clean(text, name, defects)


def _clean(text: str, name: str, defects: list[str]) -> str:
    """The stored form of a 7-bit header value as compat32 returns it: decoded, unfolded, cut."""
    return _unfold(_decode_words(text, name, defects) if "=?" in text else text)


def _unfold(text: str) -> str:
    return " ".join(text.split()).replace("\x00", "")[:MAX_HEADER_CHARS]


def _decode_words(text: str, name: str, defects: list[str]) -> str:
    try:
        return str(email.header.make_header(email.header.decode_header(text)))
    except LookupError:
        defects.append(f"unknown_charset:{name}")
    except Exception:
        defects.append(f"bad_encoded_word:{name}")
    return text
