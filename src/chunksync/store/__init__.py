"""The message store: synced mail, byte-exact, in the queue's database (see store.store)."""

from __future__ import annotations

from chunksync.store.parse import ParsedMessage, parse_message
from chunksync.store.store import FolderKey, FolderState, MailMessage, MessageStore

__all__ = [
    "FolderKey",
    "FolderState",
    "MailMessage",
    "MessageStore",
    "ParsedMessage",
    "parse_message",
]
