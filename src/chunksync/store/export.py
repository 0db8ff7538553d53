"""Write stored messages back out, byte-exact: as Maildirs or as mbox files.

Layout under the output folder: one Maildir per folder (`INBOX/`, `Archive/`, each with cur/ new/
tmp/), or one mbox file per folder (`INBOX.mbox`); with several accounts, each account gets a
subfolder of its own. A message's bytes are written exactly as stored. In an mbox, a message that
came from an mbox is written with its own `From ` line and as it was in that file; any other gets
a `From ` line and mboxrd quoting (`>From `), which readers undo.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import IO, Any

from chunksync.exceptions import ConfigurationError
from chunksync.store.store import MessageStore

FORMATS = ("maildir", "mbox")
_UNSAFE = re.compile(r"[^\w.@+-]+")
_FROM_LINE = re.compile(rb"^(>*From )", re.MULTILINE)

LETTERS = {
    "\\Draft": "D",
    "\\Flagged": "F",
    "$Forwarded": "P",
    "\\Answered": "R",
    "\\Seen": "S",
    "\\Deleted": "T",
}


def safe_name(text: str) -> str:
    return _UNSAFE.sub("_", text).strip("._") or "_"


def export(
    store: MessageStore,
    out: Path,
    fmt: str,
    *,
    account: str | None = None,
    folder: str | None = None,
    include_deleted: bool = False,
) -> int:
    """Write every stored message (of `account`/`folder` when given); returns how many. The
    messages kept after the server deleted them only with `include_deleted`: by default an
    export is the mailbox as the server had it at the last sync."""
    if fmt not in FORMATS:
        raise ConfigurationError(f"unknown export format '{fmt}': use maildir or mbox")
    out.mkdir(parents=True, exist_ok=True)
    accounts = {f.account for f in store.folders(account)}
    several = len(accounts) > 1
    writer = _MaildirWriter(out, several) if fmt == "maildir" else _MboxWriter(out, several)
    count = 0
    with writer:
        for row in store.iter_messages(account, folder, include_deleted=include_deleted):
            writer.write(row)
            count += 1
    return count


class _Writer:
    def __init__(self, out: Path, several: bool) -> None:
        self.out = out
        self.several = several
        self._stack = ExitStack()

    def place(self, row: dict[str, Any]) -> Path:
        base = self.out / safe_name(row["account"]) if self.several else self.out
        return base / safe_name(row["folder"])

    def write(self, row: dict[str, Any]) -> None:
        raise NotImplementedError

    def __enter__(self) -> _Writer:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()


class _MaildirWriter(_Writer):
    def write(self, row: dict[str, Any]) -> None:
        folder = self.place(row)
        if not (folder / "cur").is_dir():
            for sub in ("cur", "new", "tmp"):
                (folder / sub).mkdir(parents=True, exist_ok=True)
        letters = "".join(sorted(LETTERS[f] for f in str(row["flags"]).split() if f in LETTERS))
        name = row.get("source_key") if str(row["account"]).startswith("maildir:") else None
        unique = safe_name(str(name)) if name else f"{row['uidvalidity']}.{row['uid']}.chunksync"
        path = folder / "cur" / f"{unique}:2,{letters}"
        path.write_bytes(bytes(row["raw"]))
        when = row.get("internaldate")
        if when is not None:
            os.utime(path, (float(when), float(when)))


class _MboxWriter(_Writer):
    def __init__(self, out: Path, several: bool) -> None:
        super().__init__(out, several)
        self._files: dict[Path, IO[bytes]] = {}

    def write(self, row: dict[str, Any]) -> None:
        path = self.place(row).with_suffix(".mbox")
        f = self._files.get(path)
        if f is None:
            path.parent.mkdir(parents=True, exist_ok=True)
            f = self._files[path] = self._stack.enter_context(open(path, "wb"))
        f.writelines(mbox_entry(row))


def mbox_entry(row: dict[str, Any]) -> Iterator[bytes]:
    raw = bytes(row["raw"])
    envelope = row.get("envelope")
    if envelope:
        head = str(envelope).encode("latin-1")
        yield head
        yield raw
        # The segment's length (in source_key "offset+length") says which separator followed.
        length = str(row.get("source_key") or "").partition("+")[2]
        if length.isdigit():
            yield b"\r\n"[2 - max(0, min(2, int(length) - len(head) - len(raw))) :]
            return
    else:
        when = row.get("internaldate")
        stamp = time.asctime(time.gmtime(float(when) if when is not None else 0.0))
        yield f"From MAILER-DAEMON {stamp}\n".encode("ascii")
        yield _FROM_LINE.sub(rb">\1", raw)
        if not raw.endswith(b"\n"):
            yield b"\n"
    yield b"\r\n" if raw.endswith(b"\r\n") else b"\n"
