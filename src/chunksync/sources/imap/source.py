"""The IMAP source: plans a folder's sync and processes its chunks into the message store.

A `fetch` chunk is one `UID FETCH` of its UID range with BODY.PEEK[] (nothing is marked read),
FLAGS, INTERNALDATE, RFC822.SIZE (MODSEQ with CONDSTORE, X-GM-MSGID and X-GM-LABELS on Gmail),
written in one transaction. A chunk whose messages are large is written in parts of
MAX_PART_BYTES as they arrive, while the server goes on sending, each part checkpointed (the UIDs
left), so memory is bounded and a retry resumes; no FETCH of the sizes first (a round trip a
chunk). A connection lost mid-chunk (BYE, `doveadm kick`, a reset) is reopened once and the
chunk goes on from what is left; a second loss goes to the worker, categorized, to be retried
with backoff.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from imapclient.exceptions import IMAPClientAbortError

from chunksync.backends.base import Session
from chunksync.context import ChunkContext
from chunksync.exceptions import Abort, InvalidPayload
from chunksync.sources.imap.auth import Credentials
from chunksync.sources.imap.connection import Connection, Pool, uid_fetch
from chunksync.sources.imap.diff import search_windows, uid_difference, uid_set, uid_set_minus
from chunksync.sources.imap.planner import FolderPlanner, folder_status
from chunksync.sources.imap.uri import ImapTarget, parse_imap_uri
from chunksync.sources.mail import (
    DEFAULT_OPTIONS,
    MailSource,
    Reconciliation,
    SyncOptions,
    folder_key,
)
from chunksync.store import FolderKey, MailMessage, MessageStore
from chunksync.store.store import flags_text, message_row

log = logging.getLogger("chunksync.imap")

KIND = "imap"
MAX_PART_BYTES = 32 * 1024 * 1024  # a chunk's messages are written in parts of this many bytes
FLAG_WINDOW_UIDS = 50_000
_LOST = (IMAPClientAbortError, OSError, EOFError)


class ImapSource(MailSource):
    kind = KIND

    def __init__(self) -> None:
        super().__init__()
        self.pool = Pool()
        self._credentials: dict[str, Credentials] = {}
        self._lock = threading.Lock()

    # --- configuration -----------------------------------------------------------------

    def set_credentials(self, uri_or_account: str, credentials: Credentials) -> None:
        """Where the secret of this account comes from (else CHUNKSYNC_IMAP_* variables)."""
        account = (
            parse_imap_uri(uri_or_account).account if "://" in uri_or_account else uri_or_account
        )
        with self._lock:
            self._credentials[account] = credentials

    def configure(self, uri: str, *, processes: int = 1, credentials: Any = None) -> None:
        if isinstance(credentials, Credentials) and credentials.given:
            self.set_credentials(uri, credentials)
        self.pool.share = processes

    def credentials(self, target: ImapTarget) -> Credentials:
        with self._lock:
            found = self._credentials.get(target.account)
        return found if found is not None else Credentials.from_environment()

    def dependency(self, uri: str) -> str:
        return f"imap://{parse_imap_uri(uri).account}"

    @contextmanager
    def connection(self, target: ImapTarget) -> Iterator[Connection]:
        with self.pool.connection(target, self.credentials(target)) as conn:
            yield conn

    def permits_held(self, dependency: str, permits: int) -> None:
        if dependency.startswith("imap://"):
            self.pool.trim(dependency.removeprefix("imap://"), permits)

    def close(self) -> None:
        self.pool.close()

    # --- planning -----------------------------------------------------------------

    def folder_names(self, uri: str) -> list[tuple[str, str]]:
        """(name, URI) of every selectable folder; IMAPClient decodes modified UTF-7 names, so
        'Entw&APw-rfe' is listed, matched and stored as 'Entwürfe'. A folder renamed on the
        server since the last sync is renamed in the store first (`follow_renames`)."""
        target = parse_imap_uri(uri)
        with self.connection(target) as conn:
            listed = conn.client.list_folders()
            names = sorted(selectable(listed))
            if self.has_store():
                follow_renames(conn, self.store(), target.account, names)
        return [(name, target.uri_for(name)) for name in names]

    def folder_of(self, uri: str) -> str:
        return parse_imap_uri(uri).folder

    def plan(
        self, uri: str, *, chunk_size: int, options: SyncOptions = DEFAULT_OPTIONS
    ) -> list[dict[str, Any]]:
        target = parse_imap_uri(uri)
        store = self.store() if self.has_store() else None
        with self.connection(target) as conn:
            return FolderPlanner(conn, store, target, chunk_size, options).plan()

    def reconcile(self, uri: str) -> Reconciliation:
        """The counts; when they differ, what differs by UID (a read-only UID-set difference)."""
        target = parse_imap_uri(uri)
        with self.connection(target) as conn:
            status = folder_status(conn, target.folder)
            key = FolderKey(target.account, target.folder, status.uidvalidity)
            stored, size = self.store().count(key)
            details = ""
            if stored != status.messages:
                conn.select(target.folder)
                found = uid_difference(conn, self.store(), key, 1, status.uidnext - 1, beyond=True)
                details = found.describe(target.folder)
        return Reconciliation(uri, target.folder, status.messages, stored, size, details)

    # --- processing -----------------------------------------------------------------

    def process(self, ctx: ChunkContext) -> int:
        payload = ctx.payload
        key = folder_key(payload)
        target = parse_imap_uri(ctx.queue.source)
        op = payload.get("op")
        handlers: dict[str, Callable[[ChunkContext, ImapTarget, FolderKey], int]] = {
            "fetch": self._fetch_chunk,
            "changes": self._changes_chunk,
            "reconcile": self._reconcile_chunk,
        }
        if op not in handlers:
            raise InvalidPayload(f"unknown IMAP chunk operation '{op}'")
        return handlers[op](ctx, target, key)

    def _select(self, conn: Connection, key: FolderKey) -> None:
        info = conn.select(key.folder)
        if int(info.get(b"UIDVALIDITY", key.uidvalidity)) != key.uidvalidity:
            # Planned under another UIDVALIDITY: its UIDs mean other messages now. The next
            # sync re-keys the folder; retrying this chunk could never succeed.
            raise Abort(f"the UIDVALIDITY of '{key.folder}' changed since planning: sync again")

    def _with_reconnect(self, target: ImapTarget, work: Callable[[Connection], int]) -> int:
        """Run `work` on a pooled connection; after a lost connection, once more on a new one."""
        try:
            with self.connection(target) as conn:
                return work(conn)
        except _LOST as exc:
            log.info("IMAP connection lost (%s): reconnecting once", type(exc).__name__)
        with self.connection(target) as conn:
            return work(conn)

    def _fetch_chunk(self, ctx: ChunkContext, target: ImapTarget, key: FolderKey) -> int:
        spec = str(ctx.payload.get("uids") or "")
        if not spec:
            raise InvalidPayload("an IMAP fetch chunk needs 'uids'")
        store = self.store(ctx)
        replaces = Supersede.of(store, key, ctx.payload.get("supersede"))
        resume, resumed = resume_set(spec, ctx.checkpoint)
        left, stored = [resume], [ctx.items_processed if resumed else 0]

        def put(messages: dict[int, dict[bytes, Any]], *, last: bool = False) -> None:
            rows = [
                message_row(key, to_message(uid, data))
                for uid, data in sorted(messages.items())
                if _body(data) is not None
            ]
            if not rows:  # the last part, when the one before ended with the FETCH
                return
            with store.backend.transaction() as s:
                store.put_rows(s, rows)
                replaces.apply(s, rows)
            stored[0] += len(rows)
            left[0] = uid_set_minus(left[0], (int(r["uid"]) for r in rows))
            if not last:  # a part: what is still to fetch, should this attempt stop here
                ctx.save_checkpoint({"left": left[0]}, stored[0])

        def work(conn: Connection) -> int:
            self._select(conn, key)
            if left[0]:
                items = fetch_items(conn)
                result = uid_fetch(conn, left[0], items, part_bytes=MAX_PART_BYTES, on_part=put)
                if result.throttled:
                    ctx.signal_stress()
                put(result.messages, last=True)
            return stored[0]

        return self._with_reconnect(target, work)

    def _changes_chunk(self, ctx: ChunkContext, target: ImapTarget, key: FolderKey) -> int:
        payload = ctx.payload
        since = int(payload["since"])
        store = self.store(ctx)

        def work(conn: Connection) -> int:
            self._select(conn, key)
            items = ["UID", "FLAGS"] + (["X-GM-LABELS"] if conn.has("X-GM-EXT-1") else [])
            changed = 0
            for lo in range(int(payload["first"]), int(payload["last"]) + 1, FLAG_WINDOW_UIDS):
                hi = min(int(payload["last"]), lo + FLAG_WINDOW_UIDS - 1)
                result = uid_fetch(
                    conn, f"{lo}:{hi}", [*items, "MODSEQ"], [f"CHANGEDSINCE {since}"]
                )
                changed += store.update_flags(key, _flag_rows(result.messages, lo, hi))
            return changed

        return self._with_reconnect(target, work)

    def _reconcile_chunk(self, ctx: ChunkContext, target: ImapTarget, key: FolderKey) -> int:
        """The UID-set difference: apply the deletion policy to what the server no longer has,
        fetch what we lack, and (`flags`) compare every message's flags."""
        payload = ctx.payload
        store = self.store(ctx)
        mirror = payload.get("deletions") == "mirror"

        def work(conn: Connection) -> int:
            self._select(conn, key)
            first, last = int(payload["first"]), int(payload["last"])
            found = uid_difference(conn, store, key, first, last)
            store.gone(key, [int(r["uid"]) for r in found.gone], mirror=mirror)
            if payload.get("flags"):
                for lo, hi, uids in search_windows(conn, first, last):
                    if uids:
                        result = uid_fetch(conn, f"{lo}:{hi}", ["UID", "FLAGS"])
                        store.update_flags(key, _flag_rows(result.messages, lo, hi))
            fetched = 0
            items = fetch_items(conn)
            for lo in range(0, len(found.missing), 500):
                batch = found.missing[lo : lo + 500]
                result = uid_fetch(conn, uid_set(batch), items)
                rows = [
                    message_row(key, to_message(uid, d))
                    for uid, d in result.messages.items()
                    if _body(d) is not None
                ]
                with store.backend.transaction() as s:
                    store.put_rows(s, rows)
                fetched += len(rows)
            return fetched

        return self._with_reconnect(target, work)


class Supersede:
    """Kept copies (deleted on the server) that a fetch chunk's downloads replace when the bytes
    are the same: what a renumbered folder's messages without a Message-ID were stored as."""

    def __init__(self, old: FolderKey | None, digests: dict[str, int]) -> None:
        self.old = old
        self.digests = digests

    @classmethod
    def of(cls, store: MessageStore, key: FolderKey, note: Any) -> Supersede:
        if not isinstance(note, dict):
            return cls(None, {})
        old = FolderKey(key.account, key.folder, int(note["uidvalidity"]))
        return cls(old, store.deleted_digests(old, int(note["first"]), int(note["last"])))

    def apply(self, session: Session, rows: list[dict[str, Any]]) -> None:
        if self.old is None or not self.digests:
            return
        taken = [self.digests.pop(r["sha256"]) for r in rows if r["sha256"] in self.digests]
        session.execute_many(
            "store_delete_message", [{**self.old.params(), "uid": uid} for uid in taken]
        )


def selectable(listed: list[tuple[Any, Any, Any]]) -> list[str]:
    """The names of the listed folders that can be selected."""
    names = []
    for flags, _delimiter, name in listed:
        lowered = {
            f.decode("ascii", "replace").lower() if isinstance(f, bytes) else str(f).lower()
            for f in flags
        }
        if "\\noselect" not in lowered and "\\nonexistent" not in lowered:
            names.append(name if isinstance(name, str) else name.decode("utf-8", "replace"))
    return names


def follow_renames(conn: Connection, store: MessageStore, account: str, names: list[str]) -> None:
    """A stored folder the server no longer lists, and a listed folder new to the store with the
    same UIDVALIDITY (servers keep it on RENAME): the folder was renamed; the store follows, so
    its messages are neither downloaded again nor kept as deleted. One STATUS per new folder,
    only when a stored folder is missing."""
    known = {f.folder: f for f in store.folders(account)}
    listed = set(names)
    missing = {f.uidvalidity: f.folder for f in known.values() if f.folder not in listed}
    if not missing:
        return
    for name in (n for n in names if n not in known):
        old = missing.pop(folder_status(conn, name).uidvalidity, None)
        if old is not None:
            log.info("folder %s was renamed to %s: the store follows", old, name)
            store.rename_folder(account, old, name)
        if not missing:
            return


# --- FETCH data -> messages -------------------------------------------------------------


def fetch_items(conn: Connection) -> list[str]:
    items = ["UID", "BODY.PEEK[]", "FLAGS", "INTERNALDATE", "RFC822.SIZE"]
    if conn.has("CONDSTORE"):
        items.append("MODSEQ")
    if conn.has("X-GM-EXT-1"):
        items += ["X-GM-MSGID", "X-GM-LABELS"]
    return items


def _body(data: dict[bytes, Any]) -> bytes | None:
    body = data.get(b"BODY[]")
    return bytes(body) if body is not None else None


def _decode(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def to_message(uid: int, data: dict[bytes, Any]) -> MailMessage:
    internal = data.get(b"INTERNALDATE")
    modseq = data.get(b"MODSEQ")
    labels = data.get(b"X-GM-LABELS")
    msgid = data.get(b"X-GM-MSGID")
    return MailMessage(
        uid=uid,
        raw=_body(data) or b"",
        flags=[_decode(f) for f in data.get(b"FLAGS", ())],
        internaldate=internal.timestamp() if isinstance(internal, datetime) else None,
        labels=None if labels is None else [_decode(label) for label in labels],
        gm_msgid=None if msgid is None else str(msgid),
        modseq=int(modseq[0]) if isinstance(modseq, tuple | list) and modseq else None,
    )


def _flag_rows(
    messages: dict[int, dict[bytes, Any]], lo: int, hi: int
) -> list[tuple[int, str, int | None, str | None]]:
    import json

    rows = []
    for uid, data in messages.items():
        if not lo <= uid <= hi or b"FLAGS" not in data:
            continue
        modseq = data.get(b"MODSEQ")
        labels = data.get(b"X-GM-LABELS")
        rows.append(
            (
                uid,
                flags_text(_decode(f) for f in data[b"FLAGS"]),
                int(modseq[0]) if isinstance(modseq, tuple | list) and modseq else None,
                None if labels is None else json.dumps([_decode(x) for x in labels]),
            )
        )
    return rows


def resume_set(spec: str, checkpoint: Any) -> tuple[str, bool]:
    """The UIDs a fetch chunk still has to fetch, and whether an earlier attempt stored some:
    all of `spec`, or what its checkpoint says is left (`left`, a UID set; or `done_through`,
    the last UID stored, as 0.1 wrote it)."""
    if isinstance(checkpoint, dict):
        if isinstance(checkpoint.get("left"), str):
            return str(checkpoint["left"]), True
        through = checkpoint.get("done_through")
        if isinstance(through, int) and through > 0:
            return uid_set_minus(spec, (), after=through), True
    return spec, False
