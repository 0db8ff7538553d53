"""Read the headers of a raw RFC 822 message, and say what is wrong with it, without ever failing.

The store keeps the raw bytes whatever happens; parsing only adds the searchable headers and a
list of defects (the email package's own defect classes, plus ours: `no_header_body_separator`,
`8bit_header:<Name>`, `unknown_charset:<Name>`, `body_not_parsed_too_large`, `unparseable:...`).
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


@dataclass(slots=True)
class ParsedMessage:
    headers: dict[str, str | None] = field(default_factory=dict)
    defects: list[str] = field(default_factory=list)


def header_end(raw: bytes) -> int:
    """The offset just past the header block's blank line, or -1 when there is none."""
    ends = [i + n for i, n in ((raw.find(b"\r\n\r\n"), 4), (raw.find(b"\n\n"), 2)) if i >= 0]
    return min(ends) if ends else -1


def parse_message(raw: bytes) -> ParsedMessage:
    """Headers and defects of `raw`; never raises."""
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
        text = text.encode("ascii", "surrogateescape").decode("utf-8", "replace")
    elif "=?" in text:
        text = _decode_words(text, name, defects)
    text = " ".join(text.split())  # unfold
    return text.replace("\x00", "")[:MAX_HEADER_CHARS]


def _decode_words(text: str, name: str, defects: list[str]) -> str:
    try:
        return str(email.header.make_header(email.header.decode_header(text)))
    except LookupError:
        defects.append(f"unknown_charset:{name}")
    except Exception:
        defects.append(f"bad_encoded_word:{name}")
    return text
