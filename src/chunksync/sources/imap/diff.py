"""What differs between a folder on the server and in the store, and how it is mended.

The UID-set difference compares each SEARCH window's whole span [lo, hi] with the store, never
only the span between the UIDs the server still has: a message expunged before a window's first
surviving UID, after its last, or in a window where none survived is seen. (Comparing the
survivors' span was the bug behind "an expunge is not seen": of two messages, expunging the first
left it in the store for ever, whatever the folder's name or the messages' bytes.)

A renumbered folder (the server lost its UID list and gave every message a new UID, keeping its
UIDVALIDITY or not) shows as stored messages gone and as many UIDs new. The new ones are indexed
(UID, size, Message-ID: headers only, one FETCH per INDEX_BATCH_UIDS) and matched by Message-ID
and size to the gone ones, which take their new UIDs instead of being downloaded again; only what
cannot be matched (no Message-ID, or one shared by messages of the same size) is downloaded, and
the download then replaces the kept copy of the same bytes (`supersede`).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from chunksync.backends.base import Row
from chunksync.sources.imap.connection import Connection, uid_fetch
from chunksync.store import FolderKey, MessageStore
from chunksync.store.parse import parse_message

SEARCH_WINDOW_UIDS = 20_000  # a window's SEARCH response stays far below imaplib's line limit
INDEX_BATCH_UIDS = 2_000  # UIDs per headers-only FETCH when matching a renumbered folder
SHOWN_UIDS = 10  # UIDs named in a message about a difference
MAX_UID = 2**32 - 1
INDEX_ITEMS = ["UID", "RFC822.SIZE", "BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"]


@dataclass
class Difference:
    """Stored messages the server no longer has (their rows), and server UIDs not stored."""

    gone: list[Row] = field(default_factory=list)
    missing: list[int] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.gone or self.missing)

    def describe(self, folder: str) -> str:
        """One sentence saying what differs, by UID."""
        parts = []
        if self.gone:
            uids = [int(r["uid"]) for r in self.gone]
            parts.append(f"{len(uids)} stored but no longer on the server (UID {_shown(uids)})")
        if self.missing:
            parts.append(
                f"{len(self.missing)} on the server but not stored (UID {_shown(self.missing)})"
            )
        return f"{folder}: " + "; ".join(parts) if parts else f"{folder}: no difference by UID"


def _shown(uids: Sequence[int]) -> str:
    head = ", ".join(str(u) for u in sorted(uids)[:SHOWN_UIDS])
    return head + (f" and {len(uids) - SHOWN_UIDS} more" if len(uids) > SHOWN_UIDS else "")


def uid_set(uids: Iterable[int]) -> str:
    """A compact IMAP sequence set: [1, 2, 3, 7] -> "1:3,7"."""
    parts: list[str] = []
    start = prev = None
    for uid in sorted(uids):
        if start is None:
            start = prev = uid
        elif prev is not None and uid == prev + 1:
            prev = uid
        else:
            parts.append(f"{start}" if start == prev else f"{start}:{prev}")
            start = prev = uid
    if start is not None:
        parts.append(f"{start}" if start == prev else f"{start}:{prev}")
    return ",".join(parts)


def uid_set_minus(spec: str, done: Iterable[int], *, after: int = 0) -> str:
    """The UID set `spec` ("1:500,600:700"; "*" is the largest UID) without the UIDs `done`
    and those up to `after`, as a UID set ("" when nothing is left): what a chunk still has to
    fetch. Works on ranges, so a wide sparse range costs no more than a narrow one."""
    ranges: list[tuple[int, int]] = []
    for part in filter(None, spec.split(",")):
        lo_text, _, hi_text = part.partition(":")
        lo = MAX_UID if lo_text == "*" else int(lo_text)
        hi = lo if not hi_text else MAX_UID if hi_text == "*" else int(hi_text)
        lo, hi = min(lo, hi), max(lo, hi)
        if hi > after:
            ranges.append((max(lo, after + 1), hi))
    merged: list[tuple[int, int]] = []
    for lo, hi in sorted(ranges):
        if merged and lo <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(hi, merged[-1][1]))
        else:
            merged.append((lo, hi))
    cut = sorted(set(done))
    left: list[str] = []
    for lo, hi in merged:
        at = lo
        for uid in cut[bisect.bisect_left(cut, lo) : bisect.bisect_right(cut, hi)]:
            if uid > at:
                left.append(f"{at}" if uid - 1 == at else f"{at}:{uid - 1}")
            at = max(at, uid + 1)
        if at <= hi:
            left.append(f"{at}" if at == hi else f"{at}:{hi}")
    return ",".join(left)


def search_windows(conn: Connection, first: int, last: int) -> Iterator[tuple[int, int, list[int]]]:
    """(lo, hi, the folder's UIDs in [lo, hi]) one window at a time, ascending."""
    lo = first
    while lo <= last:
        hi = min(last, lo + SEARCH_WINDOW_UIDS - 1)
        found = conn.client.search(["UID", f"{lo}:{hi}"])
        # "lo:hi" with hi past the last UID matches the last message whatever its UID: filter.
        yield lo, hi, sorted(u for u in found if lo <= u <= hi)
        lo = hi + 1


def uid_difference(
    conn: Connection,
    store: MessageStore,
    key: FolderKey,
    first: int,
    last: int,
    *,
    beyond: bool = False,
) -> Difference:
    """The difference over [first, last], each window's whole span compared; `beyond`: with
    `last` the server's last UID, a message stored past it is gone too (a repair, a report)."""
    found = Difference()
    for lo, hi, uids in search_windows(conn, first, last):
        on_server = set(uids)
        here = store.window(key, lo, hi)
        found.gone.extend(r for r in here if int(r["uid"]) not in on_server)
        known = {int(r["uid"]) for r in here}
        found.missing.extend(u for u in uids if u not in known)
    if beyond:
        found.gone.extend(store.window(key, max(first, last + 1), MAX_UID))
    return found


def index_uids(conn: Connection, uids: Sequence[int]) -> Iterator[tuple[int, str | None, int]]:
    """(uid, Message-ID, size) of the given messages, headers only."""
    ordered = sorted(uids)
    for lo in range(0, len(ordered), INDEX_BATCH_UIDS):
        batch = ordered[lo : lo + INDEX_BATCH_UIDS]
        for uid, data in uid_fetch(conn, uid_set(batch), INDEX_ITEMS).messages.items():
            yield int(uid), message_id_of(data), int(data.get(b"RFC822.SIZE", -1))


def message_id_of(data: dict[bytes, Any]) -> str | None:
    header = next((v for k, v in data.items() if k.startswith(b"BODY[HEADER")), b"")
    return parse_message(bytes(header or b"") + b"\r\n").headers["message_id"]


def match_renumbered(
    gone: Iterable[Row], server: Iterable[tuple[int, str | None, int]]
) -> list[tuple[int, int]]:
    """(stored UID, new UID) of each gone message matched by Message-ID and size to a new one."""
    candidates: dict[tuple[str, int], list[int]] = {}
    for row in gone:
        if row.get("message_id"):
            key = (str(row["message_id"]), int(row["size"]))
            candidates.setdefault(key, []).append(int(row["uid"]))
    moves: list[tuple[int, int]] = []
    for uid, message_id, size in server:
        stored = candidates.get((message_id, size)) if message_id else None
        if stored:
            moves.append((stored.pop(0), uid))
    return moves


@dataclass(frozen=True, slots=True)
class Mended:
    """What is left to download after a difference was mended, and the UID window of the kept
    copies a download may replace (None: nothing to replace)."""

    download: list[int]
    supersede: tuple[int, int] | None


def mend(
    conn: Connection,
    store: MessageStore,
    key: FolderKey,
    gone: list[Row],
    new: Sequence[int],
    *,
    mirror: bool,
) -> Mended:
    """Give gone messages the new UIDs they were renumbered to, apply the deletion policy to the
    rest, and say what must still be downloaded (no FETCH at all when nothing went)."""
    if not gone:
        return Mended(sorted(new), None)
    moves = match_renumbered(gone, index_uids(conn, new)) if new else []
    store.renumber(key, moves)
    moved = {old for old, _ in moves}
    rest = [int(r["uid"]) for r in gone if int(r["uid"]) not in moved]
    store.gone(key, rest, mirror=mirror)
    taken = {new_uid for _, new_uid in moves}
    download = sorted(u for u in new if u not in taken)
    supersede = (min(rest), max(rest)) if rest and download and not mirror else None
    return Mended(download, supersede)


__all__ = ["Difference", "Mended", "mend", "search_windows", "uid_difference", "uid_set"]
