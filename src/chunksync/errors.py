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

Optional libraries (httpx, requests, urllib3, psycopg, imapclient) are never imported here: their
classes are matched by qualified name in the exception's MRO, so chunksync works without them.
This module works on raw text; the worker redacts messages separately (see chunksync.redact).
"""

from __future__ import annotations

import email.utils
import errno
import imaplib
import json
import math
import re
import socket
import sqlite3
import ssl
import time
import urllib.error
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC
from typing import Any

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

RETRY_AFTER_CAP_SECONDS = 3600.0

_MAX_CHAIN_LINKS = 32  # a pathological chain must not make categorization slow
_MAX_TEXT_CHARS = 16_384  # the signal is at the start of a message, never deep in a dump
_MAX_DELAY_DIGITS = 9  # ~31 years; longer "seconds" are garbage, not a request to wait forever
_MAX_DATE_CHARS = 64  # an HTTP-date is 29 characters

_TIMEOUT = ErrorCategory.TIMEOUT
_RATE_LIMIT = ErrorCategory.RATE_LIMIT
_NETWORK = ErrorCategory.NETWORK
_TEMPORARY = ErrorCategory.TEMPORARY
_AUTH = ErrorCategory.AUTH
_PERMISSION = ErrorCategory.PERMISSION
_NOT_FOUND = ErrorCategory.NOT_FOUND
_DATA_CONFLICT = ErrorCategory.DATA_CONFLICT
_PROCESSING = ErrorCategory.PROCESSING_ERROR


@dataclass(frozen=True, slots=True)
class Categorization:
    """What `categorize()` decided: the category, the rule that fired, and any Retry-After."""

    category: ErrorCategory
    rule: str
    retry_after_s: float | None = None


_DEFAULT = Categorization(ErrorCategory.UNKNOWN, "default")

_Detector = Callable[[BaseException], Categorization | None]


def categorize(error: BaseException | str) -> Categorization:
    """Sort a failure (an exception, or the text of one) into one of the ten categories.

    Deterministic, and never raises: anything it cannot read is "unknown" (rule "default").
    """
    try:
        if isinstance(error, BaseException):
            return _categorize_exception(error)
        text = error if isinstance(error, str) else str(error)
        return _from_text(text[:_MAX_TEXT_CHARS]) or _DEFAULT
    except Exception:  # categorizing a failure must never become a second failure
        return _DEFAULT


def _categorize_exception(exc: BaseException) -> Categorization:
    chain = _chain(exc)
    for detectors in (_STRUCTURED, _WRAPPERS, _TEXT):
        for link in chain:
            for detector in detectors:
                found = _safely(detector, link)
                if found is not None:
                    return found
    return _DEFAULT


def _safely(detector: _Detector, link: BaseException) -> Categorization | None:
    try:
        return detector(link)
    except Exception:  # one odd attribute must not hide the signals of the other detectors
        return None


# --- the chain -------------------------------------------------------------------------------


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception and everything it wraps, nearest first, each once."""
    seen: set[int] = set()
    links: list[BaseException] = []
    queue: deque[BaseException] = deque([exc])
    while queue and len(links) < _MAX_CHAIN_LINKS:
        link = queue.popleft()
        if id(link) in seen:
            continue
        seen.add(id(link))
        links.append(link)
        queue.extend(_wrapped(link))
    return links


def _wrapped(exc: BaseException) -> list[BaseException]:
    # urllib's URLError and urllib3's MaxRetryError keep the real failure in `.reason`, and
    # requests passes urllib3's exception as an argument: these are links of the chain too.
    args = _attr(exc, "args")
    group = _attr(exc, "exceptions") if isinstance(exc, BaseExceptionGroup) else ()
    candidates = [
        exc.__cause__,
        exc.__context__,
        _attr(exc, "reason"),
        *(args if isinstance(args, tuple) else ()),
        *(group if isinstance(group, tuple) else ()),
    ]
    return [c for c in candidates if isinstance(c, BaseException)]


def _attr(obj: object, name: str) -> Any:
    """getattr that survives properties which raise (httpx's, for one, on unread responses)."""
    try:
        return getattr(obj, name, None)
    except Exception:
        return None


def _message(exc: BaseException) -> str:
    """The exception's text; imaplib passes the server's bytes, so decode them."""
    try:
        args = exc.args
        if isinstance(args, tuple) and any(isinstance(a, bytes | bytearray) for a in args):
            text = " ".join(
                _decode(a) if isinstance(a, bytes | bytearray) else str(a) for a in args
            )
        else:
            text = str(exc)
    except Exception:  # a broken __str__ leaves only the structured signals
        return ""
    return text[:_MAX_TEXT_CHARS]


def _decode(data: bytes | bytearray) -> str:
    return bytes(data[:_MAX_TEXT_CHARS]).decode("utf-8", "replace")


def _mro_names(exc: BaseException) -> frozenset[str]:
    return frozenset(f"{c.__module__}.{c.__qualname__}" for c in type(exc).__mro__)


# --- control exceptions and our own tree -----------------------------------------------------


def _control(exc: BaseException) -> Categorization | None:
    if isinstance(exc, RetryLater):
        category = _category_named(_attr(exc, "category")) or _RATE_LIMIT
        return Categorization(category, "control:retry_later", _valid_delay(_attr(exc, "delay_s")))
    if isinstance(exc, Abort):
        return Categorization(_PROCESSING, "control:abort")
    if isinstance(exc, BackendBusy):
        return Categorization(_TEMPORARY, "exception:chunksync.BackendBusy")
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
    (BackendUnavailable, _NETWORK),
    (IntegrityConflict, _DATA_CONFLICT),
    (SchemaError, _PROCESSING),
    (NotFound, _NOT_FOUND),
    (ConfigurationError, _PROCESSING),  # a user mistake: retrying cannot fix it
)


def _wrapper(exc: BaseException) -> Categorization | None:
    for cls, category in _WRAPPER_CLASSES:
        if isinstance(exc, cls):
            return Categorization(category, f"exception:chunksync.{cls.__name__}")
    return None


# --- databases -------------------------------------------------------------------------------

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


def _sqlstate(exc: BaseException) -> Categorization | None:
    for name in ("sqlstate", "pgcode"):  # psycopg 3 and our BackendError; psycopg2
        code = _attr(exc, name)
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


def _sqlite(exc: BaseException) -> Categorization | None:
    if not isinstance(exc, sqlite3.Error):
        return None
    name = _attr(exc, "sqlite_errorname")
    if isinstance(name, str):
        for prefix, category in _SQLITE_NAMES:
            if name.startswith(prefix):
                return Categorization(category, f"sqlite:{prefix}")
    if isinstance(exc, sqlite3.OperationalError) and _SQLITE_LOCKED_TEXT.search(_message(exc)):
        return Categorization(_TEMPORARY, "sqlite:database_is_locked")
    if isinstance(exc, sqlite3.IntegrityError):
        return Categorization(_DATA_CONFLICT, "sqlite:IntegrityError")
    return None


# --- HTTP ------------------------------------------------------------------------------------

_HTTP_STATUS: Mapping[int, ErrorCategory] = {
    408: _TIMEOUT,
    504: _TIMEOUT,
    429: _RATE_LIMIT,
    500: _TEMPORARY,
    502: _TEMPORARY,
    423: _TEMPORARY,  # locked (WebDAV): the lock goes away
    425: _TEMPORARY,  # too early: replaying later is the point
    401: _AUTH,
    404: _NOT_FOUND,
    410: _NOT_FOUND,
    409: _DATA_CONFLICT,
}

# Google APIs answer a quota problem with 403 and one of these reasons in the body.
_RATE_LIMIT_REASONS = re.compile(
    r"\b(?:userRateLimitExceeded|rateLimitExceeded|dailyLimitExceeded)\b", re.IGNORECASE
)


def _http(exc: BaseException) -> Categorization | None:
    response = _attr(exc, "response")
    if response is None:
        response = _attr(exc, "resp")  # google-api-python-client's HttpError
    status = _http_status(exc, response)
    if status is None:
        return None
    retry_after = parse_retry_after(_header(_http_headers(exc, response), "Retry-After"))
    category = _HTTP_STATUS.get(status)
    if status == 503:
        # A 503 that says when to come back is the server shedding load: a rate limit.
        category = _RATE_LIMIT if retry_after is not None else _TEMPORARY
    elif status == 403:
        limited = retry_after is not None or _RATE_LIMIT_REASONS.search(_http_body(exc, response))
        category = _RATE_LIMIT if limited else _PERMISSION
    elif category is None:
        category = _PROCESSING if status < 500 else _TEMPORARY
    return Categorization(category, f"http_status:{status}", retry_after)


def _http_status(exc: BaseException, response: object) -> int | None:
    candidates = [
        _attr(response, "status_code"),
        _attr(response, "status"),
        _attr(exc, "status_code"),
        _attr(exc, "status"),
    ]
    if isinstance(exc, urllib.error.HTTPError):
        candidates.insert(0, exc.code)
    for value in candidates:
        if isinstance(value, int) and not isinstance(value, bool) and 400 <= value <= 599:
            return value
    return None


def _http_headers(exc: BaseException, response: object) -> object:
    for candidate in (_attr(response, "headers"), _attr(exc, "headers"), _attr(exc, "hdrs")):
        if candidate is not None:
            return candidate
    return response if isinstance(response, Mapping) else None  # httplib2: headers are the dict


def _header(headers: object, name: str) -> object:
    try:
        getter = getattr(headers, "get", None)
        value = getter(name) if callable(getter) else None
        if value is None and isinstance(headers, Mapping):  # a plain dict is case-sensitive
            value = next((v for k, v in headers.items() if str(k).lower() == name.lower()), None)
        return value
    except Exception:
        return None


def _http_body(exc: BaseException, response: object) -> str:
    # Only a body already read: touching requests' `.text` on a streamed response would
    # download it, and categorizing must not do I/O.
    parts = [_message(exc)]
    for candidate in (_attr(response, "_content"), _attr(exc, "content"), _attr(exc, "body")):
        if isinstance(candidate, bytes | bytearray):
            parts.append(_decode(candidate))
        elif isinstance(candidate, str):
            parts.append(candidate[:_MAX_TEXT_CHARS])
    return "\n".join(parts)


# --- Retry-After -----------------------------------------------------------------------------

_DELAY_SECONDS = re.compile(rf"[0-9]{{1,{_MAX_DELAY_DIGITS}}}")


def parse_retry_after(
    value: object, *, now: float | None = None, cap_s: float = RETRY_AFTER_CAP_SECONDS
) -> float | None:
    """Seconds to wait from a Retry-After value (RFC 9110: delay-seconds or an HTTP-date).

    Accepts str, bytes or int; anything else, and garbage (negative, fractional, non-finite,
    absurdly long, unparseable), is None. A date in the past is 0. The result is capped at
    `cap_s` (`math.inf` disables the cap). Never raises.
    """
    try:
        cap = _cap(cap_s)
        if isinstance(value, bool):
            return None
        if isinstance(value, int):
            return _whole_seconds(value, cap)
        if isinstance(value, bytes):
            value = value.decode("ascii")
        if not isinstance(value, str):
            return None
        text = value.strip()
        if _DELAY_SECONDS.fullmatch(text):
            return _whole_seconds(int(text), cap)
        return _http_date(text, now, cap)
    except Exception:  # a server's garbage header must never crash the worker
        return None


def _cap(cap_s: object) -> float:
    if isinstance(cap_s, int | float) and not isinstance(cap_s, bool) and not math.isnan(cap_s):
        return max(float(cap_s), 0.0)
    return RETRY_AFTER_CAP_SECONDS


def _whole_seconds(seconds: int, cap: float) -> float | None:
    if seconds < 0 or seconds >= 10**_MAX_DELAY_DIGITS:
        return None
    return min(float(seconds), cap)


def _http_date(text: str, now: float | None, cap: float) -> float | None:
    if not text or len(text) > _MAX_DATE_CHARS or text[0].isdigit() or text[0] in "+-":
        return None  # "1.5", "-5", "inf" are not dates either
    moment = email.utils.parsedate_to_datetime(text)
    if moment.tzinfo is None:  # "-0000" means UTC with unknown origin; HTTP-dates are GMT
        moment = moment.replace(tzinfo=UTC)
    delay = moment.timestamp() - (time.time() if now is None else now)
    if not math.isfinite(delay):
        return None
    return min(max(delay, 0.0), cap)


def _valid_delay(value: object, cap: float = RETRY_AFTER_CAP_SECONDS) -> float | None:
    """A delay our own code computed (RetryLater.delay_s, milliseconds a server sent)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        delay = float(value)
    except OverflowError:
        return None
    if not math.isfinite(delay) or delay < 0:
        return None
    return min(delay, cap)


# --- IMAP ------------------------------------------------------------------------------------

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
    "ALREADYEXISTS": _DATA_CONFLICT,
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


def _imap(exc: BaseException) -> Categorization | None:
    return _imap_text(_message(exc))


def _imap_text(text: str) -> Categorization | None:
    throttled = _OUTLOOK_THROTTLED.search(text)
    if throttled:
        delay = _valid_delay(int(throttled.group(1)) / 1000)
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


# --- Python exception classes ----------------------------------------------------------------

# Most specific first: SSLError is also an OSError and a ValueError, urllib3's
# NameResolutionError is a ConnectTimeoutError, requests' ConnectTimeout is a ConnectionError.
# Strings name classes of optional libraries, matched against the exception's MRO.
_CLASS_RULES: tuple[tuple[type[BaseException] | str, ErrorCategory], ...] = (
    (socket.gaierror, _NETWORK),
    (socket.herror, _NETWORK),
    ("urllib3.exceptions.NameResolutionError", _NETWORK),
    ("urllib3.exceptions.NewConnectionError", _NETWORK),
    # A certificate that does not verify is a configuration problem: retrying cannot help.
    (ssl.SSLCertVerificationError, _PERMISSION),
    (ssl.SSLError, _NETWORK),
    (TimeoutError, _TIMEOUT),  # also socket.timeout, asyncio.TimeoutError
    ("httpx.TimeoutException", _TIMEOUT),
    ("requests.exceptions.Timeout", _TIMEOUT),
    ("urllib3.exceptions.TimeoutError", _TIMEOUT),
    (ConnectionError, _NETWORK),  # reset, refused, aborted, broken pipe
    ("httpx.NetworkError", _NETWORK),
    ("httpx.RemoteProtocolError", _NETWORK),  # server disconnected without a response
    ("requests.exceptions.ConnectionError", _NETWORK),
    ("urllib3.exceptions.ProtocolError", _NETWORK),
    ("urllib3.exceptions.SSLError", _NETWORK),
    (imaplib.IMAP4.readonly, _PERMISSION),  # the mailbox became read-only under us
    (imaplib.IMAP4.abort, _NETWORK),  # connection dropped or BYE, without a code
    ("imapclient.exceptions.LoginError", _AUTH),
    (PermissionError, _PERMISSION),
    (FileNotFoundError, _NOT_FOUND),
    (FileExistsError, _DATA_CONFLICT),
    (json.JSONDecodeError, _PROCESSING),
    (UnicodeError, _PROCESSING),
    (ValueError, _PROCESSING),
    (KeyError, _PROCESSING),
    (TypeError, _PROCESSING),
    (MemoryError, _PROCESSING),
)

# OSErrors built from an errno that has no subclass of its own.
_ERRNO_RULES: Mapping[int, ErrorCategory] = {
    code: category
    for name, category in (
        ("ENETUNREACH", _NETWORK),
        ("EHOSTUNREACH", _NETWORK),
        ("ENETDOWN", _NETWORK),
        ("EHOSTDOWN", _NETWORK),
        ("ETIMEDOUT", _TIMEOUT),
    )
    if (code := getattr(errno, name, None)) is not None
}

_CERT_VERIFY_TEXT = re.compile(r"CERTIFICATE_VERIFY_FAILED|certificate verify failed", re.I)


def _python_class(exc: BaseException) -> Categorization | None:
    names = _mro_names(exc)
    if "imapclient.exceptions.LoginError" in names and isinstance(
        exc.__context__, imaplib.IMAP4.abort | OSError
    ):
        # IMAPClient turns any error during LOGIN into a LoginError, also a connection that
        # dropped (imaplib's abort) or failed: not a credentials problem.
        return Categorization(_NETWORK, "exception:imapclient.LoginError.connection_lost")
    if _is_tls_or_connect(exc, names) and _CERT_VERIFY_TEXT.search(_message(exc)):
        # httpx and requests wrap ssl's verification error in their ConnectError.
        return Categorization(_PERMISSION, "exception:ssl.certificate_verify_failed")
    for matcher, category in _CLASS_RULES:
        if isinstance(matcher, str) and matcher in names:
            return Categorization(category, f"exception:{_short(matcher)}")
        if isinstance(matcher, type) and isinstance(exc, matcher):
            return Categorization(category, f"exception:{_class_label(matcher)}")
    code = _attr(exc, "errno") if isinstance(exc, OSError) else None
    if isinstance(code, int) and code in _ERRNO_RULES:
        return Categorization(_ERRNO_RULES[code], f"exception:errno.{errno.errorcode[code]}")
    return None


def _is_tls_or_connect(exc: BaseException, names: frozenset[str]) -> bool:
    return isinstance(exc, OSError) or any("SSL" in n or "Connect" in n for n in names)


def _class_label(cls: type[BaseException]) -> str:
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return _short(f"{cls.__module__}.{cls.__qualname__}")


def _short(qualified: str) -> str:
    return qualified.replace(".exceptions.", ".").replace("json.decoder.", "json.")


# --- message text ----------------------------------------------------------------------------


def _status_number(*codes: int) -> str:
    # A status number stands alone: "uid 4290" is not a 429, nor is "v1.429".
    return r"(?<![\w.])(?:" + "|".join(str(c) for c in codes) + r")(?!\w|\.\d)"


# The original system's text rules. Text says 401 and 403 are both "auth" (it could not tell
# them apart); a structured HTTP 403 status is "permission" (see _http), and both stay.
_TEXT_RULES: tuple[tuple[ErrorCategory, re.Pattern[str]], ...] = tuple(
    (category, re.compile(pattern, re.IGNORECASE))
    for category, pattern in (
        (
            _TIMEOUT,
            _status_number(408, 504)
            + r"|\btime[ _-]?out\b|\btimed[ _-]?out\b|\bETIMEDOUT\b|deadline exceeded",
        ),
        (
            _RATE_LIMIT,
            _status_number(429)
            + r"|too many (?:requests|connections)|\brate[ _-]?limit|\bthrottl|quota exceeded",
        ),
        (
            _NETWORK,
            r"connection (?:reset|refused|aborted|closed|lost)|\bECONN(?:RESET|REFUSED|ABORTED)\b"
            r"|\bENOTFOUND\b|\bEAI_AGAIN\b|\bE(?:HOST|NET)UNREACH\b|\bgetaddrinfo\b|\bDNS\b"
            r"|name or service not known|name resolution|network is unreachable"
            r"|no route to host|broken pipe|\bEPIPE\b|socket (?:error|closed|hang up)",
        ),
        (
            _TEMPORARY,
            _status_number(500, 502, 503)
            + r"|service unavailable|bad gateway|internal server error|\btemporar(?:y|ily)\b"
            r"|try again|database is locked|\bdeadlock|server (?:is )?busy|overloaded",
        ),
        (
            _AUTH,
            _status_number(401, 403)
            + r"|unauthori[sz]ed|\bforbidden\b|authenticat(?:e|ion) failed|authentication required"
            r"|invalid credentials|login failed|invalid_grant|token (?:has )?expired",
        ),
        (
            _PERMISSION,
            r"access (?:is )?denied|permission denied|not permitted"
            r"|insufficient (?:permissions?|privileges?|scopes?)",
        ),
        (
            _NOT_FOUND,
            _status_number(404, 410)
            + r"|not found|no such (?:file|mailbox|folder|directory|user|table)"
            r"|does(?: not|n't) exist",
        ),
        (
            _DATA_CONFLICT,
            _status_number(409)
            + r"|\bconflict|\bduplicate|already exists|unique (?:constraint|violation)",
        ),
        (
            _PROCESSING,
            _status_number(400, 422)
            + r"|\binvalid\b|\bmalformed\b|failed to (?:process|parse|decode)|parse error"
            r"|cannot (?:parse|decode)|\bvalidation\b|unprocessable|\bcorrupt",
        ),
    )
)


def _from_text(text: str) -> Categorization | None:
    found = _imap_text(text)  # a bracketed IMAP code in stored text is still that signal
    if found is not None:
        return found
    for category, pattern in _TEXT_RULES:
        if pattern.search(text):
            return Categorization(category, f"text:{category.value}")
    return None


def _text(exc: BaseException) -> Categorization | None:
    return _from_text(_message(exc))


_STRUCTURED: tuple[_Detector, ...] = (_control, _sqlstate, _sqlite, _http, _imap, _python_class)
_WRAPPERS: tuple[_Detector, ...] = (_wrapper,)
_TEXT: tuple[_Detector, ...] = (_text,)
