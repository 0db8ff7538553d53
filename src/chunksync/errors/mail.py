"""The IMAP detector: RFC 5530 response codes and the texts well-known servers send.

Read from an exception's message (imaplib and IMAPClient put the server's line there) and
also from stored text, where a bracketed code is still the server's own signal.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from chunksync.errors.categorization import Categorization
from chunksync.errors.chain import message
from chunksync.errors.retry_after import valid_delay
from chunksync.models import ErrorCategory

_TEMPORARY = ErrorCategory.TEMPORARY
_AUTH = ErrorCategory.AUTH
_PERMISSION = ErrorCategory.PERMISSION
_NOT_FOUND = ErrorCategory.NOT_FOUND
_PROCESSING = ErrorCategory.PROCESSING_ERROR
_RATE_LIMIT = ErrorCategory.RATE_LIMIT

_IMAP_CODES: Mapping[str, ErrorCategory] = {
    "UNAVAILABLE": _TEMPORARY,
    "INUSE": _TEMPORARY,
    "SERVERBUG": _TEMPORARY,
    "EXPUNGEISSUED": _TEMPORARY,
    "AUTHENTICATIONFAILED": _AUTH,
    "EXPIRED": _AUTH,
    "AUTHORIZATIONFAILED": _PERMISSION,
    "NOPERM": _PERMISSION,
    "PRIVACYREQUIRED": _PERMISSION,
    "CONTACTADMIN": _PERMISSION,
    "NONEXISTENT": _NOT_FOUND,
    "TRYCREATE": _NOT_FOUND,  # RFC 3501: APPEND/COPY to a mailbox that does not exist
    "ALREADYEXISTS": ErrorCategory.DATA_CONFLICT,
    "CANNOT": _PROCESSING,
    "CORRUPTION": _PROCESSING,
    "CLIENTBUG": _PROCESSING,
    "LIMIT": _RATE_LIMIT,
    "THROTTLED": _RATE_LIMIT,  # not in RFC 5530, but Gmail and others send it
    # A full mailbox is neither a bug in the data (processing_error) nor a missing right
    # (permission): it clears when the owner deletes mail or the quota is raised, and Gmail
    # also says OVERQUOTA for its bandwidth limits (matched above as rate_limit). Temporary
    # lets the policy retry with backoff, bounded by max_attempts.
    "OVERQUOTA": _TEMPORARY,
}

_IMAP_CODE = re.compile(r"\[([A-Za-z][A-Za-z0-9-]*)(?=[\] ])")

_OUTLOOK_THROTTLED = re.compile(
    r"Request is throttled\.\s*Suggested Backoff Time:\s*([0-9]{1,12})\s*milliseconds",
    re.IGNORECASE,
)

# Server texts that decide even when a code is present: Gmail puts its bandwidth limit under
# [OVERQUOTA], which alone would read as a full mailbox.
_IMAP_OVERRIDES: tuple[tuple[re.Pattern[str], ErrorCategory, str], ...] = (
    (re.compile(r"Too many simultaneous connections", re.I), _RATE_LIMIT, "connections"),
    (re.compile(r"Account exceeded command or bandwidth limits", re.I), _RATE_LIMIT, "bandwidth"),
)

_DOVECOT_NO_MAILBOX = re.compile(r"Mailbox doesn\\?'t exist", re.IGNORECASE)


def imap(exc: BaseException) -> Categorization | None:
    """The IMAP signal in an exception's message, if any."""
    return imap_text(message(exc))


def imap_text(text: str) -> Categorization | None:
    """Outlook's throttling first, then texts that override codes, then the codes themselves."""
    throttled = _OUTLOOK_THROTTLED.search(text)
    if throttled:
        delay = valid_delay(int(throttled.group(1)) / 1000)
        return Categorization(_RATE_LIMIT, "imap_text:throttled", delay)
    for pattern, category, name in _IMAP_OVERRIDES:
        if pattern.search(text):
            return Categorization(category, f"imap_text:{name}")
    for match in _IMAP_CODE.finditer(text):
        code = match.group(1).upper()
        if code in _IMAP_CODES:
            return Categorization(_IMAP_CODES[code], f"imap_code:{code}")
    if _DOVECOT_NO_MAILBOX.search(text):
        return Categorization(_NOT_FOUND, "imap_text:mailbox_does_not_exist")
    return None
