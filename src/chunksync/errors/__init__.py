"""Sort any failure into one of the ten ErrorCategory values.

`categorize()` trusts structured signals first and message text last. It walks the exception
chain breadth first (the exception, its `__cause__`, its `__context__`, and exceptions wrapped in
`.reason`, `.args` or an exception group), guarding against cycles, and asks each link in turn:

    control     RetryLater / Abort raised by a handler              "control:retry_later"
                BackendBusy: worth trying again             "exception:chunksync.BackendBusy"
    sqlstate    PostgreSQL SQLSTATE (.sqlstate, psycopg2's .pgcode) "sqlstate:40P01"
    sqlite      sqlite3's extended error name                       "sqlite:SQLITE_BUSY"
    http        a 4xx/5xx status, with its Retry-After              "http_status:429"
    imap        RFC 5530 [CODE]s and well-known server texts        "imap_code:UNAVAILABLE"
    exception   the Python exception class, most specific first     "exception:socket.gaierror"

The first link with any of these signals decides. Only when no link has one do our own wrapper
classes (BackendUnavailable, NotFound...) speak, and only then the message text of each link
("text:timeout"). Nothing matched: "unknown" with rule "default".

Where each signal is read:

    chain.py          the links of the chain, and reading a link without raising
    databases.py      SQLSTATE and SQLite
    http.py           HTTP statuses;  retry_after.py: Retry-After and other delays
    mail.py           IMAP codes and server texts
    classes.py        Python exception classes and errnos
    text.py           message text
    (here)            control exceptions and our own exception tree

Optional libraries (httpx, requests, urllib3, psycopg, imapclient) are never imported here: their
classes are matched by qualified name in the exception's MRO, so chunksync works without them.
This package works on raw text; the worker redacts messages separately (see chunksync.redact).
"""

from __future__ import annotations

from chunksync.errors.categorization import DEFAULT, Categorization, Detector
from chunksync.errors.chain import MAX_TEXT_CHARS, attr, chain
from chunksync.errors.classes import python_class
from chunksync.errors.databases import sqlite, sqlstate
from chunksync.errors.http import http_status
from chunksync.errors.mail import imap
from chunksync.errors.retry_after import RETRY_AFTER_CAP_SECONDS, parse_retry_after, valid_delay
from chunksync.errors.text import from_text, message_text
from chunksync.exceptions import (
    Abort,
    BackendBusy,
    BackendUnavailable,
    ConfigurationError,
    IntegrityConflict,
    NotFound,
    RetryLater,
    SchemaError,
)
from chunksync.models import ErrorCategory

__all__ = ["RETRY_AFTER_CAP_SECONDS", "Categorization", "categorize", "parse_retry_after"]


def categorize(error: BaseException | str) -> Categorization:
    """Sort a failure (an exception, or the text of one) into one of the ten categories.

    Deterministic, and never raises: anything it cannot read is "unknown" (rule "default").
    """
    try:
        if isinstance(error, BaseException):
            return _categorize_exception(error)
        message = error if isinstance(error, str) else str(error)
        return from_text(message[:MAX_TEXT_CHARS]) or DEFAULT
    except Exception:  # categorizing a failure must never become a second failure
        return DEFAULT


def _categorize_exception(exc: BaseException) -> Categorization:
    links = chain(exc)
    for detectors in (_STRUCTURED, _WRAPPERS, _TEXT):
        for link in links:
            for detector in detectors:
                found = _safely(detector, link)
                if found is not None:
                    return found
    return DEFAULT


def _safely(detector: Detector, link: BaseException) -> Categorization | None:
    try:
        return detector(link)
    except Exception:  # one odd attribute must not hide the signals of the other detectors
        return None


# --- control exceptions and our own tree -----------------------------------------------------


def _control(exc: BaseException) -> Categorization | None:
    if isinstance(exc, RetryLater):
        category = _category_named(attr(exc, "category")) or ErrorCategory.RATE_LIMIT
        return Categorization(category, "control:retry_later", valid_delay(attr(exc, "delay_s")))
    if isinstance(exc, Abort):
        return Categorization(ErrorCategory.PROCESSING_ERROR, "control:abort")
    if isinstance(exc, BackendBusy):
        return Categorization(ErrorCategory.TEMPORARY, "exception:chunksync.BackendBusy")
    return None


def _category_named(value: object) -> ErrorCategory | None:
    if not isinstance(value, str):
        return None
    try:
        return ErrorCategory(value.strip().lower())
    except ValueError:
        return None


# Our wrappers speak only when nothing they wrap does: BackendUnavailable raised from a
# psycopg InvalidPassword is an auth failure, not a network one.
_WRAPPER_CLASSES: tuple[tuple[type[BaseException], ErrorCategory], ...] = (
    (BackendUnavailable, ErrorCategory.NETWORK),
    (IntegrityConflict, ErrorCategory.DATA_CONFLICT),
    (SchemaError, ErrorCategory.PROCESSING_ERROR),
    (NotFound, ErrorCategory.NOT_FOUND),
    (ConfigurationError, ErrorCategory.PROCESSING_ERROR),  # a user mistake: retrying cannot fix it
)


def _wrapper(exc: BaseException) -> Categorization | None:
    for cls, category in _WRAPPER_CLASSES:
        if isinstance(exc, cls):
            return Categorization(category, f"exception:chunksync.{cls.__name__}")
    return None


_STRUCTURED: tuple[Detector, ...] = (_control, sqlstate, sqlite, http_status, imap, python_class)
_WRAPPERS: tuple[Detector, ...] = (_wrapper,)
_TEXT: tuple[Detector, ...] = (message_text,)
