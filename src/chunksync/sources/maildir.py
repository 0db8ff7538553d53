"""The Maildir source: `maildir:///path/to/Maildir` (one folder: the maildir at that path).

A Maildir has no UIDs, so a message's UID is derived from its unique file name (the part before
`:2,`): a stable 63-bit number, the same on every run, so that the upsert stays idempotent and a
rename (a flag change) is the same message. Planning lists `cur/` and `new/`, compares them with
the store, fetches new messages in chunks of file names, and applies flag changes and deletions
at once (they cost no download). A Maildir++ subfolder (`/path/.Archive`) is folder `Archive` of
the account at `/path`.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from chunksync.context import ChunkContext
from chunksync.exceptions import ConfigurationError, InvalidPayload
from chunksync.sources.mail import (
    DEFAULT_OPTIONS,
    MailSource,
    Reconciliation,
    SyncOptions,
    batched,
    folder_key,
    local_path,
)
from chunksync.store import FolderKey, MailMessage, MessageStore
from chunksync.store.store import flags_text

KIND = "maildir"
UIDVALIDITY = 1
MAX_UID = 2**63 - 1
INFO_SEPARATOR = ":2,"

# Maildir info letters -> IMAP flags (P, "passed", is what IMAP servers call $Forwarded).
FLAG_LETTERS: dict[str, str] = {
    "D": "\\Draft",
    "F": "\\Flagged",
    "P": "$Forwarded",
    "R": "\\Answered",
    "S": "\\Seen",
    "T": "\\Deleted",
}
LETTER_FOR_FLAG = {flag: letter for letter, flag in FLAG_LETTERS.items()}


@dataclass(frozen=True, slots=True)
class MaildirEntry:
    relpath: str  # "cur/1700000000.M1P2.host:2,S"
    unique: str  # "1700000000.M1P2.host"
    flags: tuple[str, ...]

    @property
    def uid(self) -> int:
        return uid_for(self.unique)


def uid_for(unique_name: str) -> int:
    """A stable UID (1 .. 2**63-1) for a Maildir unique name."""
    digest = hashlib.sha256(unique_name.encode("utf-8", "surrogateescape")).digest()
    return int.from_bytes(digest[:8], "big") % MAX_UID + 1


def parse_filename(name: str) -> tuple[str, tuple[str, ...]]:
    unique, sep, info = name.partition(INFO_SEPARATOR)
    if not sep:
        return name.split(":", 1)[0], ()
    flags = tuple(sorted({FLAG_LETTERS[c] for c in info if c in FLAG_LETTERS}))
    return unique, flags


def maildir_path(uri: str) -> tuple[Path, str, str]:
    """(path, account, folder) of a maildir:// URI."""
    path = local_path(
        uri, KIND, "Maildir", "use maildir:///path/to/Maildir", empty="it names no folder"
    )
    if not (path / "cur").is_dir() or not (path / "new").is_dir():
        raise ConfigurationError(f"{path} is not a Maildir (it needs cur/ and new/ folders)")
    if path.name.startswith(".") and (path.parent / "cur").is_dir():
        return path, f"maildir:{path.parent}", path.name[1:]
    return path, f"maildir:{path}", "INBOX"


def scan(path: Path) -> Iterator[MaildirEntry]:
    for sub in ("new", "cur"):
        with os.scandir(path / sub) as found:
            for entry in found:
                if entry.name.startswith("."):
                    continue
                unique, flags = parse_filename(entry.name)
                yield MaildirEntry(f"{sub}/{entry.name}", unique, flags)


class MaildirSource(MailSource):
    kind = KIND

    def dependency(self, uri: str) -> str:
        return "maildir://local"

    def folder_names(self, uri: str) -> list[tuple[str, str]]:
        path, _, _ = maildir_path(uri)
        found = [("INBOX", f"maildir://{quote(str(path))}")]
        for child in sorted(path.iterdir()):
            if child.name.startswith(".") and (child / "cur").is_dir():
                found.append((child.name[1:], f"maildir://{quote(str(child))}"))
        return found

    def folder_of(self, uri: str) -> str:
        return maildir_path(uri)[2]

    def plan(
        self, uri: str, *, chunk_size: int, options: SyncOptions = DEFAULT_OPTIONS
    ) -> Iterator[dict[str, Any]]:
        path, account, folder = maildir_path(uri)
        key = FolderKey(account, folder, UIDVALIDITY)
        entries = {e.uid: e for e in scan(path)}
        if self.has_store():
            store = self.store()
            stored = {int(r["uid"]): r for r in store.window(key, 0, MAX_UID)}
            self._apply_changes(store, key, entries, stored, mirror=options.mirror)
            store.save_folder(
                key, uidnext=0, highestmodseq=None, messages=len(entries), origin=options.origin
            )
        else:
            stored = {}
        new = sorted(e.relpath for uid, e in entries.items() if uid not in stored)
        for files in batched(new, chunk_size):
            yield {
                "op": "fetch",
                **key.params(),
                "path": str(path),
                "files": list(files),
                "count": len(files),
            }

    @staticmethod
    def _apply_changes(
        store: MessageStore,
        key: FolderKey,
        entries: dict[int, MaildirEntry],
        stored: dict[int, Any],
        *,
        mirror: bool,
    ) -> None:
        """Flag changes and deletions need no download: they are written at planning (a
        deleted file's message is kept, marked deleted, unless the run mirrors deletions)."""
        gone = [uid for uid in stored if uid not in entries]
        changed = [
            (uid, flags_text(e.flags), None, None)
            for uid, e in entries.items()
            if uid in stored and stored[uid]["flags"] != flags_text(e.flags)
        ]
        store.gone(key, gone, mirror=mirror)
        store.update_flags(key, changed)

    def process(self, ctx: ChunkContext) -> int:
        payload = ctx.payload
        key = folder_key(payload)
        files = payload.get("files")
        if not isinstance(files, list):
            raise InvalidPayload("a Maildir chunk needs a 'files' list")
        path = Path(str(payload["path"]))
        messages: list[MailMessage] = []
        listing: dict[str, str] | None = None
        for relpath in files:
            found = path / relpath
            try:
                raw, mtime = _read(found)
            except FileNotFoundError:  # renamed (flags changed) or deleted since planning
                if listing is None:
                    listing = {e.unique: e.relpath for e in scan(path)}
                moved = listing.get(parse_filename(found.name)[0])
                if moved is None:
                    continue
                found = path / moved
                raw, mtime = _read(found)
            unique, flags = parse_filename(found.name)
            messages.append(
                MailMessage(uid_for(unique), raw, flags, mtime, source_key=unique),
            )
        return self.store(ctx).put(key, messages)

    def reconcile(self, uri: str) -> Reconciliation:
        path, account, folder = maildir_path(uri)
        on_source = sum(1 for _ in scan(path))
        stored, size = self.store().count(FolderKey(account, folder, UIDVALIDITY))
        return Reconciliation(uri, folder, on_source, stored, size)


def _read(path: Path) -> tuple[bytes, float]:
    with open(path, "rb") as f:
        return f.read(), os.fstat(f.fileno()).st_mtime
