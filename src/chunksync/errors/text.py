"""The last resort: rules over a failure's message text, the same for exceptions and stored text.

These are the original system's rules, kept as they were. Text says 401 and 403 are both
"auth" (it could not tell them apart); a structured HTTP 403 status is "permission" (see the
HTTP detector), and both stay.
"""

from __future__ import annotations

import re

from chunksync.errors.categorization import Categorization
from chunksync.errors.chain import message
from chunksync.errors.mail import imap_text
from chunksync.models import ErrorCategory


def _status_number(*codes: int) -> str:
    # A status number stands alone: "uid 4290" is not a 429, nor is "v1.429".
    return r"(?<![\w.])(?:" + "|".join(str(c) for c in codes) + r")(?!\w|\.\d)"


_TEXT_RULES: tuple[tuple[ErrorCategory, re.Pattern[str]], ...] = tuple(
    (category, re.compile(pattern, re.IGNORECASE))
    for category, pattern in (
        (
            ErrorCategory.TIMEOUT,
            _status_number(408, 504)
            + r"|\btime[ _-]?out\b|\btimed[ _-]?out\b|\bETIMEDOUT\b|deadline exceeded",
        ),
        (
            ErrorCategory.RATE_LIMIT,
            _status_number(429)
            + r"|too many (?:requests|connections)|\brate[ _-]?limit|\bthrottl|quota exceeded",
        ),
        (
            ErrorCategory.NETWORK,
            r"connection (?:reset|refused|aborted|closed|lost)|\bECONN(?:RESET|REFUSED|ABORTED)\b"
            r"|\bENOTFOUND\b|\bEAI_AGAIN\b|\bE(?:HOST|NET)UNREACH\b|\bgetaddrinfo\b|\bDNS\b"
            r"|name or service not known|name resolution|network is unreachable"
            r"|no route to host|broken pipe|\bEPIPE\b|socket (?:error|closed|hang up)",
        ),
        (
            ErrorCategory.TEMPORARY,
            _status_number(500, 502, 503)
            + r"|service unavailable|bad gateway|internal server error|\btemporar(?:y|ily)\b"
            r"|try again|database is locked|\bdeadlock|server (?:is )?busy|overloaded",
        ),
        (
            ErrorCategory.AUTH,
            _status_number(401, 403)
            + r"|unauthori[sz]ed|\bforbidden\b|authenticat(?:e|ion) failed|authentication required"
            r"|invalid credentials|login failed|invalid_grant|token (?:has )?expired",
        ),
        (
            ErrorCategory.PERMISSION,
            r"access (?:is )?denied|permission denied|not permitted"
            r"|insufficient (?:permissions?|privileges?|scopes?)",
        ),
        (
            ErrorCategory.NOT_FOUND,
            _status_number(404, 410)
            + r"|not found|no such (?:file|mailbox|folder|directory|user|table)"
            r"|does(?: not|n't) exist",
        ),
        (
            ErrorCategory.DATA_CONFLICT,
            _status_number(409)
            + r"|\bconflict|\bduplicate|already exists|unique (?:constraint|violation)",
        ),
        (
            ErrorCategory.PROCESSING_ERROR,
            _status_number(400, 422)
            + r"|\binvalid\b|\bmalformed\b|failed to (?:process|parse|decode)|parse error"
            r"|cannot (?:parse|decode)|\bvalidation\b|unprocessable|\bcorrupt",
        ),
    )
)


def from_text(text: str) -> Categorization | None:
    """A bracketed IMAP code in stored text is still that signal; then the text rules."""
    found = imap_text(text)
    if found is not None:
        return found
    for category, pattern in _TEXT_RULES:
        if pattern.search(text):
            return Categorization(category, f"text:{category.value}")
    return None


def message_text(exc: BaseException) -> Categorization | None:
    """The text rules over an exception's message."""
    return from_text(message(exc))
