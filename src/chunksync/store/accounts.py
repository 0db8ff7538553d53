"""What the store holds, per account and per folder, and finding an account by the name a user
gives it: the account key (alice@mail.example.com:1143), or the URI the user synced
(imaps://alice@mail.example.com, with or without a folder), as `chunksync accounts` lists it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from chunksync.backends.base import Row
from chunksync.exceptions import ConfigurationError
from chunksync.store.store import MessageStore


@dataclass(frozen=True, slots=True)
class FolderSummary:
    account: str
    folder: str
    origin: str | None
    on_server: int  # at the last sync
    stored: int  # still on the server
    deleted: int  # kept after the server deleted them
    bytes: int
    synced_at: float | None

    @classmethod
    def from_row(cls, row: Row) -> FolderSummary:
        synced = row.get("synced_at")
        return cls(
            account=str(row["account"]),
            folder=str(row["folder"]),
            origin=row.get("origin"),
            on_server=int(row["on_server"] or 0),
            stored=int(row["stored"] or 0),
            deleted=int(row["deleted"] or 0),
            bytes=int(row["bytes"] or 0),
            synced_at=None if synced is None else float(synced),
        )


@dataclass(frozen=True, slots=True)
class AccountSummary:
    account: str
    name: str  # how the user named it: the URI they synced, else the account key
    folders: int
    stored: int
    deleted: int
    bytes: int
    synced_at: float | None


def folder_summaries(store: MessageStore, account: str | None = None) -> list[FolderSummary]:
    return [FolderSummary.from_row(r) for r in store.summaries(account)]


def account_summaries(store: MessageStore) -> list[AccountSummary]:
    by_account: dict[str, list[FolderSummary]] = {}
    for folder in folder_summaries(store):
        by_account.setdefault(folder.account, []).append(folder)
    return [_total(account, folders) for account, folders in by_account.items()]


def _total(account: str, folders: Sequence[FolderSummary]) -> AccountSummary:
    origins = [f.origin for f in folders if f.origin]
    times = [f.synced_at for f in folders if f.synced_at is not None]
    return AccountSummary(
        account=account,
        name=origins[0] if origins else account,
        folders=len(folders),
        stored=sum(f.stored for f in folders),
        deleted=sum(f.deleted for f in folders),
        bytes=sum(f.bytes for f in folders),
        synced_at=max(times) if times else None,
    )


def resolve_account(store: MessageStore, name: str) -> str:
    """The account key the store holds under `name` (the key itself, or the URI it was synced
    as, a folder or options after it allowed); one sentence listing what it holds if none."""
    accounts = account_summaries(store)
    wanted = {name.rstrip("/"), _origin_of(name)}
    for summary in accounts:
        if summary.account in wanted or summary.name in wanted:
            return summary.account
    if not accounts:
        raise ConfigurationError(
            f"the store holds no account '{name}': it holds no mail yet (run `chunksync sync`)"
        )
    held = ", ".join(a.name if a.name == a.account else f"{a.name} ({a.account})" for a in accounts)
    raise ConfigurationError(f"the store holds no account '{name}': it holds {held}")


def _origin_of(name: str) -> str:
    """imap://alice@host:1143/INBOX?connections=2 -> imap://alice@host:1143."""
    try:
        parts = urlsplit(name)
    except ValueError:
        return name
    if parts.scheme.lower() in ("imap", "imaps") and parts.netloc:
        return f"{parts.scheme.lower()}://{parts.netloc}"
    return name


__all__ = [
    "AccountSummary",
    "FolderSummary",
    "account_summaries",
    "folder_summaries",
    "resolve_account",
]
