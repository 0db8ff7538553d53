"""The message store: synced mail in the queue's own database, through named queries.

Every write is an idempotent upsert keyed by (account, folder, UIDVALIDITY, UID): a chunk retried
after a crash rewrites the same rows and creates no duplicate. The raw bytes are stored exactly as
the source gave them, with their SHA-256; the parsed headers and the parse defects sit beside them.

A message the server no longer has is kept, marked with the time it went (`deleted_at`), under
the `keep` deletion policy (the default: an archive loses nothing), or forgotten under `mirror`.
A message that went from one folder while the same bytes (same Message-ID and size) arrived in
another of the account moved: it is stored once, in its new folder, whichever folder syncs first.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from chunksync.backends.base import Backend, Row, Session
from chunksync.store.parse import parse_message

PAGE_ROWS = 200
REKEY_WINDOW_SECONDS = 86_400.0
DELETIONS = ("keep", "mirror")  # what a message deleted on the server becomes in the store
# Stored messages' Message-ID keys wait in a log (SQLite: mail_message_ids_new) until this many,
# or until a lookup needs them, then go into their sorted table together (schema_store.sql).
# A merge costs less a key the more keys it takes (one sort, each leaf of the table written once
# for all of them): 100,000 keys into an empty table 0.23 s, two merges of 50,000 ~0.4 s. The
# bound is a lookup's wait for the merge before it, and a writer's for the lock a merge holds:
# 250,000 keys take ~0.6 s (measured; memory stays SQLite's cache, not the keys').
MERGE_ROWS = 250_000


@dataclass(frozen=True, slots=True)
class FolderKey:
    """Where a message lives: the account, the folder, and the folder's UIDVALIDITY."""

    account: str
    folder: str
    uidvalidity: int

    def params(self) -> dict[str, Any]:
        return {"account": self.account, "folder": self.folder, "uidvalidity": self.uidvalidity}


@dataclass(frozen=True, slots=True)
class MailMessage:
    """One message as a source delivers it."""

    uid: int
    raw: bytes
    flags: Sequence[str] = ()
    internaldate: float | None = None
    labels: Sequence[str] | None = None
    gm_msgid: str | None = None
    modseq: int | None = None
    source_key: str | None = None
    envelope: str | None = None  # an mbox "From " line, kept to write the mbox back exactly


@dataclass(frozen=True, slots=True)
class FolderState:
    account: str
    folder: str
    uidvalidity: int
    uidnext: int
    highestmodseq: int | None
    messages: int
    rekeys: int
    rekeyed_at: float | None

    @classmethod
    def from_row(cls, row: Row) -> FolderState:
        modseq = row.get("highestmodseq")
        rekeyed = row.get("rekeyed_at")
        return cls(
            account=row["account"],
            folder=row["folder"],
            uidvalidity=int(row["uidvalidity"]),
            uidnext=int(row["uidnext"]),
            highestmodseq=None if modseq is None else int(modseq),
            messages=int(row["messages"]),
            rekeys=int(row["rekeys"] or 0),
            rekeyed_at=None if rekeyed is None else float(rekeyed),
        )


def flags_text(flags: Iterable[str | bytes]) -> str:
    """Flags as stored: sorted, space-separated (\\Seen \\Flagged $Label)."""
    words = {f.decode("utf-8", "replace") if isinstance(f, bytes) else str(f) for f in flags}
    return " ".join(sorted(w for w in words if w))


def message_row(key: FolderKey, message: MailMessage) -> dict[str, Any]:
    """The upsert parameters of one message: raw bytes, digest, parsed headers, defects."""
    parsed = parse_message(message.raw)
    row: dict[str, Any] = {
        **key.params(),
        "uid": message.uid,
        "size": len(message.raw),
        "sha256": hashlib.sha256(message.raw).hexdigest(),
        "raw": message.raw,
        "internaldate": message.internaldate,
        "flags": flags_text(message.flags),
        "labels": None if message.labels is None else json.dumps(list(message.labels)),
        "gm_msgid": message.gm_msgid,
        "modseq": message.modseq,
        "source_key": message.source_key,
        "envelope": message.envelope,
        "defects": json.dumps(parsed.defects) if parsed.defects else None,
    }
    row.update(parsed.headers)
    return row


class MessageStore:
    """Named-query operations on mail_messages and mail_folders, on any backend."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    # --- messages -----------------------------------------------------------------

    def put(self, key: FolderKey, messages: Iterable[MailMessage]) -> int:
        """Upsert messages in one transaction; returns how many."""
        rows = [message_row(key, m) for m in messages]
        if rows:
            with self.backend.transaction() as s:
                self.put_rows(s, rows)
        return len(rows)

    def put_rows(self, session: Session, rows: Sequence[dict[str, Any]]) -> None:
        """Upsert rows; a kept, deleted-on-server copy of one of them elsewhere in the account
        (same Message-ID, size and bytes) moved here, and is forgotten (a probe of a small
        partial index per message, in an account that keeps any such copy at all). The rows'
        Message-ID keys are logged as they are stored, merged once MERGE_ROWS wait."""
        session.execute_many("store_upsert_message", rows)
        keeping = {
            account
            for account in {r["account"] for r in rows}
            if session.fetch_one("store_any_kept", {"account": account}) is not None
        }
        copies = [
            {k: r[k] for k in ("account", "message_id", "size", "sha256")}
            for r in rows
            if r.get("message_id") and r["account"] in keeping
        ]
        if copies:
            session.execute_many("store_delete_moved_copies", copies)
        if not self.backend.message_id_log:
            return
        waiting = session.fetch_one("sqlite_message_ids_waiting")
        if waiting is not None and int(waiting["n"]) >= MERGE_ROWS:
            self.merge_message_ids(session)

    def merge_message_ids(self, session: Session) -> None:
        """The Message-ID keys of the messages stored since the last merge, into their sorted
        table in one pass; nothing on a backend without `message_id_log` (PostgreSQL, whose
        index keeps up as it goes)."""
        if self.backend.message_id_log:
            session.execute("sqlite_merge_message_ids")
            session.execute("sqlite_clear_message_ids")

    def gone(self, key: FolderKey, uids: Iterable[int], *, mirror: bool) -> int:
        """Messages the server no longer has in this folder. One with a live copy in another
        folder of the account moved there and is forgotten; the rest are forgotten (`mirror`)
        or kept, marked with the time they went (`keep`). One transaction; returns how many."""
        rows = [{**key.params(), "uid": uid} for uid in uids]
        if rows:
            with self.backend.transaction() as s:
                if mirror:
                    s.execute_many("store_delete_message", rows)
                else:
                    self.merge_message_ids(s)  # the lookup reads the sorted keys alone
                    s.execute_many("store_delete_moved", rows)
                    s.execute_many("store_mark_deleted", rows)
        return len(rows)

    def renumber(self, key: FolderKey, moves: Sequence[tuple[int, int]]) -> int:
        """Give stored messages the new UIDs a renumbered folder gave them (old, new): no
        download. Each target UID is new to the store, so no move overwrites another."""
        rows = [
            {**key.params(), "uid": old, "new_uid": new, "new_uidvalidity": key.uidvalidity}
            for old, new in moves
        ]
        if rows:
            with self.backend.transaction() as s:
                s.execute_many("store_rekey_message", rows)
        return len(rows)

    def retire_other_uidvalidities(self, key: FolderKey, *, mirror: bool) -> None:
        """Messages of the folder stored under another UIDVALIDITY than `key`'s are not on the
        server as stored: forgotten (`mirror`) or marked deleted (`keep`)."""
        other = "store_delete_other_uidvalidity" if mirror else "store_mark_other_uidvalidity"
        self.backend.execute(other, key.params())

    def forget_kept(self, account: str, folder: str) -> None:
        """Forget a folder's messages kept after the server deleted them (a mirroring repair:
        the store becomes exactly the server)."""
        self.backend.execute("store_forget_kept", {"account": account, "folder": folder})

    def deleted_digests(self, key: FolderKey, first: int, last: int) -> dict[str, int]:
        """sha256 -> UID of the kept, deleted-on-server messages of a UID window."""
        params = {**key.params(), "first": first, "last": last}
        rows = self.backend.fetch_all("store_deleted_window", params)
        return {str(r["sha256"]): int(r["uid"]) for r in rows}

    def update_flags(
        self, key: FolderKey, changes: Iterable[tuple[int, str, int | None, str | None]]
    ) -> int:
        """(uid, flags text, modseq, labels json) per changed message; one transaction."""
        rows = [
            {**key.params(), "uid": uid, "flags": flags, "modseq": modseq, "labels": labels}
            for uid, flags, modseq, labels in changes
        ]
        if rows:
            with self.backend.transaction() as s:
                s.execute_many("store_update_flags", rows)
        return len(rows)

    def delete(self, key: FolderKey, uids: Iterable[int]) -> int:
        rows = [{**key.params(), "uid": uid} for uid in uids]
        if rows:
            with self.backend.transaction() as s:
                s.execute_many("store_delete_message", rows)
        return len(rows)

    def window(self, key: FolderKey, first: int, last: int) -> list[Row]:
        """uid, size, flags, source_key, message_id of the messages stored in [first, last]
        that the server still had at the last sync."""
        params = {**key.params(), "first": first, "last": last}
        return self.backend.fetch_all("store_uid_window", params)

    def count(self, key: FolderKey) -> tuple[int, int]:
        """(messages, bytes) stored under this key."""
        row = self.backend.fetch_one("store_count", key.params())
        return (0, 0) if row is None else (int(row["messages"]), int(row["bytes"]))

    def count_messages(self, key: FolderKey) -> int:
        """The messages stored under this key, without their bytes (a sync's plan): on SQLite,
        `count` reads every message's row, past its raw bytes."""
        row = self.backend.fetch_one("store_count_messages", key.params())
        return 0 if row is None else int(row["messages"])

    def get(self, key: FolderKey, uid: int) -> Row | None:
        return self.backend.fetch_one("store_get_message", {**key.params(), "uid": uid})

    def iter_messages(
        self,
        account: str | None = None,
        folder: str | None = None,
        *,
        include_deleted: bool = False,
    ) -> Iterator[Row]:
        """Every stored message (raw included), page by page: memory holds one page. Those
        kept after the server deleted them only with `include_deleted`."""
        after: tuple[str, str, int, int] = ("", "", -1, -1)
        while True:
            params = {
                "account": account,
                "folder": folder,
                "after_account": after[0],
                "after_folder": after[1],
                "after_uidvalidity": after[2],
                "after_uid": after[3],
                "limit": PAGE_ROWS,
                "include_deleted": include_deleted,
            }
            rows = self.backend.fetch_all("store_page", params)
            yield from rows
            if len(rows) < PAGE_ROWS:
                return
            last = rows[-1]
            after = (last["account"], last["folder"], int(last["uidvalidity"]), int(last["uid"]))

    # --- folders -----------------------------------------------------------------

    def folder(self, account: str, folder: str) -> FolderState | None:
        row = self.backend.fetch_one("store_get_folder", {"account": account, "folder": folder})
        return None if row is None else FolderState.from_row(row)

    def folders(self, account: str | None = None) -> list[FolderState]:
        rows = self.backend.fetch_all("store_list_folders", {"account": account})
        return [FolderState.from_row(r) for r in rows]

    def save_folder(
        self,
        key: FolderKey,
        *,
        uidnext: int,
        highestmodseq: int | None,
        messages: int,
        origin: str | None = None,
    ) -> None:
        """Record a folder's sync state; `origin` (the URI the user synced) names the account."""
        params = {
            **key.params(),
            "uidnext": uidnext,
            "highestmodseq": highestmodseq,
            "messages": messages,
            "origin": origin,
        }
        self.backend.execute("store_save_folder", params)

    def rename_folder(self, account: str, old: str, new: str, *, actor: str = "mail-sync") -> None:
        """Follow a folder renamed on the server: its messages and state take the new name."""
        params = {"account": account, "folder": old, "new_folder": new}
        details = {"account": account, "old_folder": old, "new_folder": new}
        with self.backend.transaction() as s:
            s.execute("store_rename_folder_messages", params)
            s.execute("store_rename_folder", params)
            s.execute("insert_audit", _audit_row("folder_renamed", actor, details))

    def summaries(self, account: str | None = None) -> list[Row]:
        """Per folder: account, folder, origin, on_server, stored, deleted, bytes, synced_at."""
        return self.backend.fetch_all("store_folder_summaries", {"account": account})

    # --- UIDVALIDITY changes -----------------------------------------------------------------

    def rekey(
        self,
        old: FolderKey,
        new: FolderKey,
        server: Iterable[tuple[int, str | None, int]],
        *,
        mirror: bool = False,
        actor: str = "mail-sync",
    ) -> tuple[int, list[int]]:
        """Move stored messages from `old` to `new` keys, matched by (Message-ID, size) against
        the server's (uid, message_id, size); the rest of `old` is forgotten (`mirror`) or kept
        marked deleted, for the download of what did not match to replace by content. Returns
        how many were moved and the server UIDs that must be downloaded again. Audited."""
        candidates: dict[tuple[str, int], list[int]] = {}
        for row in self.backend.fetch_all("store_rekey_candidates", old.params()):
            candidates.setdefault((row["message_id"], int(row["size"])), []).append(int(row["uid"]))
        moves: list[dict[str, Any]] = []
        unmatched: list[int] = []
        for uid, message_id, size in server:
            stored = candidates.get((message_id, size)) if message_id else None
            if stored:
                moves.append({**old.params(), "uid": stored.pop(0), "new_uid": uid})
            else:
                unmatched.append(uid)
        with self.backend.transaction() as s:
            for move in moves:
                move["new_uidvalidity"] = new.uidvalidity
            s.execute_many("store_rekey_message", moves)
            other = "store_delete_other_uidvalidity" if mirror else "store_mark_other_uidvalidity"
            s.execute(other, new.params())
            s.execute(
                "store_count_rekey",
                {"account": old.account, "folder": old.folder, "window_s": REKEY_WINDOW_SECONDS},
            )
            details = {
                "account": old.account,
                "folder": old.folder,
                "old_uidvalidity": old.uidvalidity,
                "new_uidvalidity": new.uidvalidity,
                "matched": len(moves),
                "to_download": len(unmatched),
            }
            s.execute(
                "insert_audit",
                {
                    "action": "uidvalidity_changed",
                    "actor": actor,
                    "reason": f"UIDVALIDITY of {old.folder} changed: folder re-keyed",
                    "chunk_id": None,
                    "queue_id": None,
                    "details": json.dumps(details),
                },
            )
        return len(moves), unmatched

    def audit(self, action: str, reason: str, details: dict[str, Any], actor: str) -> None:
        self.backend.execute(
            "insert_audit",
            {
                "action": action,
                "actor": actor,
                "reason": reason,
                "chunk_id": None,
                "queue_id": None,
                "details": json.dumps(details),
            },
        )


def _audit_row(action: str, actor: str, details: dict[str, Any]) -> dict[str, Any]:
    return {
        "action": action,
        "actor": actor,
        "reason": action.replace("_", " "),
        "chunk_id": None,
        "queue_id": None,
        "details": json.dumps(details),
    }
