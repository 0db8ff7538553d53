"""The database detectors: PostgreSQL's SQLSTATE codes and SQLite's error names.

A SQLSTATE is read from `.sqlstate` (psycopg 3 and our own BackendError) or `.pgcode`
(psycopg2), so the drivers themselves are never imported here.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Mapping

from chunksync.errors.categorization import Categorization
from chunksync.errors.chain import attr, message
from chunksync.models import ErrorCategory

_TIMEOUT = ErrorCategory.TIMEOUT
_RATE_LIMIT = ErrorCategory.RATE_LIMIT
_NETWORK = ErrorCategory.NETWORK
_TEMPORARY = ErrorCategory.TEMPORARY
_AUTH = ErrorCategory.AUTH
_PERMISSION = ErrorCategory.PERMISSION
_DATA_CONFLICT = ErrorCategory.DATA_CONFLICT
_PROCESSING = ErrorCategory.PROCESSING_ERROR

_SQLSTATE_EXACT: Mapping[str, ErrorCategory] = {
    "40001": _TEMPORARY,  # serialization_failure
    "40P01": _TEMPORARY,  # deadlock_detected
    "55P03": _TEMPORARY,  # lock_not_available (lock_timeout, NOWAIT)
    "23505": _DATA_CONFLICT,  # unique_violation
    "28P01": _AUTH,  # invalid_password
    "28000": _AUTH,  # invalid_authorization_specification
    "42501": _PERMISSION,  # insufficient_privilege
    "57P01": _TEMPORARY,  # admin_shutdown
    "57P02": _TEMPORARY,  # crash_shutdown
    "57P03": _TEMPORARY,  # cannot_connect_now (starting up, recovering)
    "57014": _TIMEOUT,  # query_canceled: what statement_timeout raises
    "53300": _RATE_LIMIT,  # too_many_connections: back off like a 429
}

_SQLSTATE_CLASS: Mapping[str, ErrorCategory] = {
    "08": _NETWORK,  # connection exceptions
    "22": _PROCESSING,  # data exceptions: the same data fails again
    "23": _DATA_CONFLICT,  # integrity constraint violations
    "28": _AUTH,
    "40": _TEMPORARY,  # transaction rollbacks
    "42": _PROCESSING,  # syntax errors, undefined tables (42501 is matched exactly first)
    "53": _TEMPORARY,  # insufficient resources: disk full, out of memory
}

_SQLSTATE_FORMAT = re.compile(r"[0-9A-Z]{5}")


def sqlstate(exc: BaseException) -> Categorization | None:
    """An exact SQLSTATE we know, else its two-character class."""
    for name in ("sqlstate", "pgcode"):  # psycopg 3 and our BackendError; psycopg2
        code = attr(exc, name)
        if isinstance(code, str) and _SQLSTATE_FORMAT.fullmatch(code):
            if code in _SQLSTATE_EXACT:
                return Categorization(_SQLSTATE_EXACT[code], f"sqlstate:{code}")
            if code[:2] in _SQLSTATE_CLASS:
                return Categorization(_SQLSTATE_CLASS[code[:2]], f"sqlstate:class{code[:2]}")
    return None


# Extended names start with the primary one (SQLITE_BUSY_SNAPSHOT, SQLITE_CONSTRAINT_UNIQUE).
_SQLITE_NAMES: tuple[tuple[str, ErrorCategory], ...] = (
    ("SQLITE_BUSY", _TEMPORARY),
    ("SQLITE_LOCKED", _TEMPORARY),
    ("SQLITE_CONSTRAINT", _DATA_CONFLICT),
    ("SQLITE_READONLY", _PERMISSION),
    ("SQLITE_PERM", _PERMISSION),
    ("SQLITE_AUTH", _PERMISSION),
    ("SQLITE_CORRUPT", _PROCESSING),
    ("SQLITE_NOTADB", _PROCESSING),
)

_SQLITE_LOCKED_TEXT = re.compile(r"database (?:table )?is locked", re.IGNORECASE)


def sqlite(exc: BaseException) -> Categorization | None:
    """sqlite3's extended error name; older Pythons leave only the class and the text."""
    if not isinstance(exc, sqlite3.Error):
        return None
    name = attr(exc, "sqlite_errorname")
    if isinstance(name, str):
        for prefix, category in _SQLITE_NAMES:
            if name.startswith(prefix):
                return Categorization(category, f"sqlite:{prefix}")
    if isinstance(exc, sqlite3.OperationalError) and _SQLITE_LOCKED_TEXT.search(message(exc)):
        return Categorization(_TEMPORARY, "sqlite:database_is_locked")
    if isinstance(exc, sqlite3.IntegrityError):
        return Categorization(_DATA_CONFLICT, "sqlite:IntegrityError")
    return None
