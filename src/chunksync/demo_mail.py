"""A sample mailbox for `make demo`: a Maildir of generated messages, a few of them malformed,
so that a newcomer sees mail land in the store (and the broken ones kept, with their defects)."""

from __future__ import annotations

import random
import time
from email.utils import formatdate, make_msgid
from pathlib import Path

DEFAULT_MESSAGES = 300
SUBJECTS = (
    "Quarterly report",
    "Lunch?",
    "Re: the migration",
    "Invoice 2024-117",
    "Build failed on main",
    "Holiday photos",
    "Meeting notes",
)
NAMES = ("alice", "bob", "carol", "dave", "erin", "frank")

# Messages every real mailbox eventually holds: each must be stored, raw, with its defects.
MALFORMED: tuple[bytes, ...] = (
    b"This message has no header block at all, only text.\r\n",
    b"From: x@example.com\r\nSubject: broken MIME\r\nContent-Type: multipart/mixed; "
    b'boundary="never-closed"\r\n\r\n--never-closed\r\nContent-Type: text/plain\r\n\r\nhi\r\n',
    b"From: \xe9milie <e@example.com>\r\nSubject: 8-bit \xff header\r\n\r\nbody\r\n",
    b"From: y@example.com\r\nSubject: =?x-unknown-charset?q?caf=E9?=\r\n\r\nbody\r\n",
)


def message(rng: random.Random, n: int, when: float) -> bytes:
    sender, recipient = rng.sample(NAMES, 2)
    body = "\r\n".join(
        " ".join(
            rng.choice(("lorem", "ipsum", "dolor", "sit", "amet", "sync", "chunk"))
            for _ in range(12)
        )
        for _ in range(rng.randint(3, 40))
    )
    headers = [
        f"From: {sender.title()} <{sender}@example.com>",
        f"To: {recipient}@example.com",
        f"Subject: {rng.choice(SUBJECTS)} #{n}",
        f"Date: {formatdate(when)}",
        f"Message-ID: {make_msgid(f'demo{n}', 'example.com')}",
    ]
    return ("\r\n".join(headers) + "\r\n\r\n" + body + "\r\n").encode("ascii")


def generate(path: Path, messages: int = DEFAULT_MESSAGES, seed: int = 7) -> int:
    """Write a Maildir at `path` (created) with `messages` messages; returns how many."""
    rng = random.Random(seed)
    for sub in ("cur", "new", "tmp"):
        (path / sub).mkdir(parents=True, exist_ok=True)
    now = time.time()
    bodies = [message(rng, n, now - n * 3600) for n in range(max(0, messages - len(MALFORMED)))]
    bodies += list(MALFORMED[: max(0, min(len(MALFORMED), messages))])
    for n, raw in enumerate(bodies):
        flags = rng.choice(("", "S", "S", "RS", "F"))
        name = f"{int(now)}.M{n}P{seed}.demo" + (f":2,{flags}" if flags else "")
        (path / ("cur" if flags else "new") / name).write_bytes(raw)
    return len(bodies)
