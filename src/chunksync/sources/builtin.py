"""The sources chunksync ships, registered on every App."""

from __future__ import annotations

from chunksync.sources.base import Source


def sources() -> list[Source]:
    from chunksync.sources.demo import DemoSource
    from chunksync.sources.maildir import MaildirSource
    from chunksync.sources.mbox import MboxSource

    found: list[Source] = [DemoSource(), MaildirSource(), MboxSource()]
    try:  # IMAPClient is the optional 'imap' extra
        from chunksync.sources.imap import ImapSource
    except ImportError:
        return found
    found.append(ImapSource())
    return found
