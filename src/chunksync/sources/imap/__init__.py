"""The IMAP source (`imap://user@host/FOLDER`, `imaps://...`): IMAPClient underneath."""

from __future__ import annotations

from chunksync.sources.imap.auth import Credentials
from chunksync.sources.imap.source import ImapSource
from chunksync.sources.imap.uri import ImapTarget, parse_imap_uri

__all__ = ["Credentials", "ImapSource", "ImapTarget", "parse_imap_uri"]
