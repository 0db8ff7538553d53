"""Planning an IMAP folder's sync: what changed since the last run, as chunk payloads.

One STATUS tells whether anything changed (an unchanged folder costs that one round trip). New
messages are found with `UID SEARCH UID lo:hi` over windows of UIDs, never one giant SEARCH ALL,
so a folder of a million messages plans in bounded memory and short responses; they are cut into
chunks of N messages, each a UID range. Flag changes since the last HIGHESTMODSEQ become one
`changes` chunk (CONDSTORE), and a count that does not add up becomes a `reconcile` chunk (the
UID-set difference: deletions, and any gap left by a chunk that died). A new UIDVALIDITY re-keys
the stored folder by Message-ID and size, so only what cannot be matched is downloaded again;
re-keys are audited and capped, so a server that changes UIDVALIDITY every time cannot loop us.

A count that does not add up (messages went, or a chunk died) is mended at planning, by the
UID-set difference (`diff`): a folder renumbered under the same UIDVALIDITY is matched like a
re-key, the deletion policy (`keep`, `mirror`) is applied to what went, and only what is still
missing is planned for download. `repair` forces all of this on a folder that looks unchanged.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from imapclient.exceptions import IMAPClientError
from imapclient.response_parser import parse_fetch_response

from chunksync.errors import categorize
from chunksync.exceptions import ConfigurationError, SourceError
from chunksync.models import ErrorCategory
from chunksync.sources.imap.connection import Connection
from chunksync.sources.imap.diff import MAX_UID, mend, search_windows, uid_difference, uid_set
from chunksync.sources.imap.uri import ImapTarget
from chunksync.sources.mail import DEFAULT_OPTIONS, SyncOptions
from chunksync.store import FolderKey, MessageStore
from chunksync.store.parse import parse_message
from chunksync.store.store import REKEY_WINDOW_SECONDS, FolderState

log = logging.getLogger("chunksync.imap")

INDEX_WINDOW_MESSAGES = 2_000  # messages per FETCH when re-keying after a UIDVALIDITY change
MAX_REKEYS_PER_DAY = 3


@dataclass(frozen=True, slots=True)
class FolderStatus:
    messages: int
    uidnext: int
    uidvalidity: int
    highestmodseq: int | None


def folder_status(conn: Connection, folder: str) -> FolderStatus:
    what = ["MESSAGES", "UIDNEXT", "UIDVALIDITY"]
    if conn.has("CONDSTORE"):
        what.append("HIGHESTMODSEQ")
    try:
        found = conn.client.folder_status(folder, what)
    except IMAPClientError as exc:
        if categorize(exc).category is ErrorCategory.NOT_FOUND:
            raise ConfigurationError(f"the folder '{folder}' does not exist") from None
        raise
    modseq = found.get(b"HIGHESTMODSEQ")
    return FolderStatus(
        messages=int(found[b"MESSAGES"]),
        uidnext=int(found[b"UIDNEXT"]),
        uidvalidity=int(found[b"UIDVALIDITY"]),
        highestmodseq=None if modseq is None else int(modseq),
    )


def search_uids(conn: Connection, first: int, last: int) -> Iterator[list[int]]:
    """The folder's UIDs in [first, last], one window at a time, ascending."""
    for _lo, _hi, uids in search_windows(conn, first, last):
        yield uids


def fetch_payloads(
    key: FolderKey,
    uids: Iterable[list[int]],
    chunk_size: int,
    extra: dict[str, Any] | None = None,
) -> Iterator[dict[str, Any]]:
    """Cut a stream of UIDs into fetch chunks of `chunk_size` messages each (`extra`: more
    fields for every chunk)."""
    pending: list[int] = []
    for window in uids:
        pending.extend(window)
        while len(pending) >= chunk_size:
            group, pending = pending[:chunk_size], pending[chunk_size:]
            yield {**_fetch_payload(key, group), **(extra or {})}
    if pending:
        yield {**_fetch_payload(key, pending), **(extra or {})}


def _fetch_payload(key: FolderKey, uids: list[int]) -> dict[str, Any]:
    contiguous = uids[-1] - uids[0] + 1 == len(uids)
    spec = f"{uids[0]}:{uids[-1]}" if contiguous else uid_set(uids)
    # A range covers UIDs that were expunged before planning too: harmless, they are not there.
    if not contiguous and len(spec) > 4 * len(f"{uids[0]}:{uids[-1]}"):
        spec = f"{uids[0]}:{uids[-1]}"
    return {"op": "fetch", **key.params(), "uids": spec, "count": len(uids)}


class FolderPlanner:
    def __init__(
        self,
        conn: Connection,
        store: MessageStore | None,
        target: ImapTarget,
        chunk_size: int,
        options: SyncOptions = DEFAULT_OPTIONS,
    ) -> None:
        self.conn = conn
        self.store = store
        self.target = target
        self.chunk_size = max(1, chunk_size)
        self.options = options

    def plan(self) -> list[dict[str, Any]]:
        folder = self.target.folder
        status = folder_status(self.conn, folder)
        key = FolderKey(self.target.account, folder, status.uidvalidity)
        state = self.store.folder(key.account, folder) if self.store else None
        stored = self.store.count_messages(key) if self.store else 0
        if (
            not self.options.repair
            and state is not None
            and state.uidvalidity == status.uidvalidity
            and _unchanged(state, status, stored)
        ):
            return []
        self.conn.select(folder)
        if state is not None and state.uidvalidity != status.uidvalidity:
            payloads = self._rekey(state, key, status)
        else:
            payloads = self._incremental(state, key, status, stored)
        if self.store is not None:
            self.store.save_folder(
                key,
                uidnext=status.uidnext,
                highestmodseq=status.highestmodseq,
                messages=status.messages,
                origin=self.options.origin,
            )
        return payloads

    def _incremental(
        self, state: FolderState | None, key: FolderKey, status: FolderStatus, stored: int
    ) -> list[dict[str, Any]]:
        if state is None or state.uidnext <= 1 or self.store is None:
            # A first sync streams its UIDs into chunks: a million messages in bounded memory.
            first = search_uids(self.conn, 1, status.uidnext - 1)
            return list(fetch_payloads(key, first, self.chunk_size))
        old_last = state.uidnext - 1
        new = [u for window in search_uids(self.conn, state.uidnext, status.uidnext - 1)
               for u in window]  # fmt: skip
        payloads = self._changes(state, key, status, old_last)
        extra: dict[str, Any] = {}
        if self.options.repair or status.messages - len(new) != stored:
            # Something went (or a chunk died): the difference, mended here, before downloading.
            new, extra = self._mend(key, status, old_last, new)
        payloads[:0] = fetch_payloads(key, [new], self.chunk_size, extra)
        if status.highestmodseq is None or self.options.repair:
            # Without CONDSTORE flags can only be compared one by one: the reconcile chunk.
            payloads.append(
                {
                    "op": "reconcile",
                    **key.params(),
                    "first": 1,
                    "last": old_last,
                    "flags": True,
                    "deletions": self.options.deletions,
                    "count": 0,
                }
            )
        return payloads

    def _mend(
        self, key: FolderKey, status: FolderStatus, old_last: int, new: list[int]
    ) -> tuple[list[int], dict[str, Any]]:
        """Mend the UID-set difference (a repair: over every UID, and what is stored past the
        last); returns the UIDs still to download and the fetch chunks' supersede note."""
        assert self.store is not None
        if self.options.repair:
            self.store.retire_other_uidvalidities(key, mirror=self.options.mirror)
            if self.options.mirror:
                self.store.forget_kept(key.account, key.folder)
            found = uid_difference(self.conn, self.store, key, 1, status.uidnext - 1, beyond=True)
            new = []
        else:
            found = uid_difference(self.conn, self.store, key, 1, old_last)
        mirror, candidates = self.options.mirror, [*found.missing, *new]
        mended = mend(self.conn, self.store, key, found.gone, candidates, mirror=mirror)
        if mended.supersede is None:
            return mended.download, {}
        return mended.download, supersede(key.uidvalidity, *mended.supersede)

    @staticmethod
    def _changes(
        state: FolderState, key: FolderKey, status: FolderStatus, old_last: int
    ) -> list[dict[str, Any]]:
        """The `changes` chunk (flags since the last HIGHESTMODSEQ), when it moved."""
        if (
            state.highestmodseq is None
            or status.highestmodseq is None
            or status.highestmodseq == state.highestmodseq
        ):
            return []
        return [
            {
                "op": "changes",
                **key.params(),
                "first": 1,
                "last": old_last,
                "since": state.highestmodseq,
                "count": 0,
            }
        ]

    def _rekey(
        self, state: FolderState, key: FolderKey, status: FolderStatus
    ) -> list[dict[str, Any]]:
        assert self.store is not None
        old = FolderKey(key.account, key.folder, state.uidvalidity)
        recent = (
            state.rekeyed_at is not None and time.time() - state.rekeyed_at < REKEY_WINDOW_SECONDS
        )
        if recent and state.rekeys >= MAX_REKEYS_PER_DAY:
            details = {
                "account": key.account,
                "folder": key.folder,
                "rekeys": state.rekeys,
                "old_uidvalidity": old.uidvalidity,
                "new_uidvalidity": key.uidvalidity,
            }
            self.store.audit(
                "uidvalidity_rekey_refused", "too many UIDVALIDITY changes", details, "mail-sync"
            )
            raise SourceError(
                f"the UIDVALIDITY of '{key.folder}' changed {state.rekeys} times in a day: the "
                "server is unstable, so the folder is not re-keyed again (see the audit log)"
            )
        moved, unmatched = self.store.rekey(
            old, key, self._index(status.messages), mirror=self.options.mirror
        )
        log.warning(
            "UIDVALIDITY of %s changed: %d message(s) re-keyed, %d to download again",
            key.folder,
            moved,
            len(unmatched),
        )

        # Kept copies of what did not match (no Message-ID) are replaced by their download.
        extra = {} if self.options.mirror else supersede(old.uidvalidity, 0, MAX_UID)
        return list(fetch_payloads(key, [sorted(unmatched)], self.chunk_size, extra))

    def _index(self, messages: int) -> Iterator[tuple[int, str | None, int]]:
        """(uid, Message-ID, size) of every message, by windows of sequence numbers."""
        items = ["UID", "RFC822.SIZE", "BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"]
        for lo in range(1, messages + 1, INDEX_WINDOW_MESSAGES):
            hi = min(messages, lo + INDEX_WINDOW_MESSAGES - 1)
            found = _seq_fetch(self.conn, lo, hi, items)
            for data in found.values():
                header = next((v for k, v in data.items() if k.startswith(b"BODY[HEADER")), b"")
                message_id = parse_message(bytes(header or b"") + b"\r\n").headers["message_id"]
                yield int(data[b"UID"]), message_id, int(data[b"RFC822.SIZE"])


def _seq_fetch(conn: Connection, lo: int, hi: int, items: list[str]) -> dict[int, dict[bytes, Any]]:
    """FETCH by sequence numbers (the windows of the index)."""
    imap = conn.client._imap
    tag = imap._command("FETCH", f"{lo}:{hi}", "(" + " ".join(items) + ")")
    typ, data = imap._command_complete("FETCH", tag)
    if typ != "OK":
        raise conn.client.Error(f"FETCH failed: {data!r}")
    _, raw = imap._untagged_response(typ, data, "FETCH")
    if raw == [None]:
        return {}
    return {int(k): v for k, v in parse_fetch_response(raw, False, False).items()}


def supersede(uidvalidity: int, first: int, last: int) -> dict[str, Any]:
    """A fetch chunk's note: a downloaded message replaces a kept copy of the same bytes
    stored under `uidvalidity` in [first, last] (the folder was renumbered)."""
    return {"supersede": {"uidvalidity": uidvalidity, "first": first, "last": last}}


def _unchanged(state: FolderState, status: FolderStatus, stored: int) -> bool:
    return (
        state.uidnext == status.uidnext
        and state.highestmodseq == status.highestmodseq
        and status.messages == stored
    )


__all__ = ["FolderPlanner", "folder_status", "search_uids", "supersede", "uid_set"]
