"""The mbox source: `mbox:///path/to/file.mbox` (one folder, named after the file).

A message's UID is its byte offset in the file plus one, and its `source_key` records the offset
and the length of its segment, so that the next run downloads only segments it has not seen (an
appended message) and forgets those that are gone. The raw bytes are stored as the file holds
them, `>From ` quoting included (mboxo and mboxrd cannot be told apart, so undoing it would lose
bytes); the `From ` line is kept as the envelope so that export writes the file back exactly.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from chunksync.context import ChunkContext
from chunksync.exceptions import ConfigurationError, InvalidPayload, SourceError
from chunksync.sources.mail import (
    DEFAULT_OPTIONS,
    MailSource,
    Reconciliation,
    SyncOptions,
    batched,
    folder_key,
    local_path,
)
from chunksync.store import FolderKey, MailMessage

KIND = "mbox"
UIDVALIDITY = 1
MAX_UID = 2**63 - 1
SCAN_BLOCK_BYTES = 4 * 1024 * 1024
_SEPARATOR = b"\nFrom "


def mbox_path(uri: str) -> tuple[Path, str, str]:
    """(path, account, folder) of an mbox:// URI."""
    path = local_path(uri, KIND, "mbox", "use mbox:///path/to/file.mbox")
    if not path.is_file():
        raise ConfigurationError(f"no mbox file at {path}")
    return path, f"mbox:{path}", path.name


def scan(path: Path) -> list[tuple[int, int]]:
    """(offset, length) of every message segment: a `From ` line to the next one."""
    starts: list[int] = []
    with open(path, "rb") as f:
        pos = 0
        tail = b"\n"  # the start of the file counts as the start of a line
        while block := f.read(SCAN_BLOCK_BYTES):
            data = tail + block
            base = pos - len(tail)
            i = data.find(_SEPARATOR)
            while i >= 0:
                starts.append(base + i + 1)
                i = data.find(_SEPARATOR, i + 1)
            pos += len(block)
            tail = data[-(len(_SEPARATOR) - 1) :]
        size = pos
    if size and (not starts or starts[0] != 0):
        raise ConfigurationError(f"{path} is not an mbox file: it does not start with 'From '")
    ends = [*starts[1:], size]
    return [(s, e - s) for s, e in zip(starts, ends, strict=True)]


def split_segment(segment: bytes) -> tuple[str, bytes]:
    """The envelope (`From ` line with its line ending) and the message bytes of a segment."""
    newline = segment.find(b"\n")
    envelope, raw = segment[: newline + 1], segment[newline + 1 :]
    if raw.endswith(b"\r\n\r\n"):
        raw = raw[:-2]
    elif raw.endswith(b"\n\n"):
        raw = raw[:-1]
    return envelope.decode("latin-1"), raw


def source_key(offset: int, length: int) -> str:
    return f"{offset}+{length}"


class MboxSource(MailSource):
    kind = KIND

    def dependency(self, uri: str) -> str:
        return "mbox://local"

    def folder_of(self, uri: str) -> str:
        return mbox_path(uri)[2]

    def plan(
        self, uri: str, *, chunk_size: int, options: SyncOptions = DEFAULT_OPTIONS
    ) -> Iterator[dict[str, Any]]:
        """An mbox's UIDs are its messages' offsets: a rewritten file moves them, so what no
        longer sits where it was is forgotten and read again (the deletion policy does not
        apply to an mbox: a kept copy would be a duplicate)."""
        path, account, folder = mbox_path(uri)
        key = FolderKey(account, folder, UIDVALIDITY)
        segments = scan(path)
        wanted = {offset + 1: source_key(offset, length) for offset, length in segments}
        seen: set[int] = set()
        if self.has_store():
            store = self.store()
            stored = {int(r["uid"]): r["source_key"] for r in store.window(key, 0, MAX_UID)}
            store.delete(key, [uid for uid, sk in stored.items() if wanted.get(uid) != sk])
            seen = {uid for uid, sk in stored.items() if wanted.get(uid) == sk}
            store.save_folder(
                key, uidnext=0, highestmodseq=None, messages=len(segments), origin=options.origin
            )
        todo = [[offset, length] for offset, length in segments if offset + 1 not in seen]
        for group in batched(todo, chunk_size):
            yield {
                "op": "fetch",
                **key.params(),
                "path": str(path),
                "segments": list(group),
                "count": len(group),
            }

    def process(self, ctx: ChunkContext) -> int:
        payload = ctx.payload
        key = folder_key(payload)
        segments = payload.get("segments")
        if not isinstance(segments, list):
            raise InvalidPayload("an mbox chunk needs a 'segments' list")
        messages: list[MailMessage] = []
        with open(str(payload["path"]), "rb") as f:
            for offset, length in segments:
                f.seek(int(offset))
                segment = f.read(int(length))
                if not segment.startswith(b"From ") or len(segment) != length:
                    raise SourceError(
                        f"the mbox {payload['path']} changed since this sync was planned: "
                        "sync it again"
                    )
                envelope, raw = split_segment(segment)
                messages.append(
                    MailMessage(
                        uid=int(offset) + 1,
                        raw=raw,
                        source_key=source_key(int(offset), int(length)),
                        envelope=envelope,
                    )
                )
        return self.store(ctx).put(key, messages)

    def reconcile(self, uri: str) -> Reconciliation:
        path, account, folder = mbox_path(uri)
        stored, size = self.store().count(FolderKey(account, folder, UIDVALIDITY))
        return Reconciliation(uri, folder, len(scan(path)), stored, size)
