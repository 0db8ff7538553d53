"""categorize() and parse_retry_after() on real exceptions and real server texts."""

from __future__ import annotations

import email.message
import email.utils
import errno
import imaplib
import json
import math
import operator
import os
import socket
import sqlite3
import ssl
import tempfile
import urllib.error
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from datetime import UTC, datetime
from typing import Any

import httpx
import imapclient.exceptions
import psycopg
import psycopg.errors
import pytest
import requests
import urllib3.connection
import urllib3.exceptions
from hypothesis import given
from hypothesis import strategies as st

from chunksync.errors import (
    RETRY_AFTER_CAP_SECONDS,
    Categorization,
    categorize,
    parse_retry_after,
)
from chunksync.exceptions import (
    Abort,
    BackendBusy,
    BackendError,
    BackendUnavailable,
    ConfigurationError,
    IntegrityConflict,
    NotFound,
    RetryLater,
    SourceError,
)
from chunksync.models import ErrorCategory as C
from tests.servers.scripted_imap import scripted_server

URL = "https://api.example.com/v1/messages"
NOW = 1_445_412_000.0  # 2015-10-21 07:20:00 UTC
DATE_IN_8_MIN = "Wed, 21 Oct 2015 07:28:00 GMT"

# --- building real failures -------------------------------------------------------------------


def caught(action: Callable[[], object]) -> BaseException:
    """Run `action` and return what it raised."""
    try:
        action()
    except BaseException as exc:
        return exc
    raise AssertionError("expected an exception")


def chained(outer: BaseException, inner: BaseException) -> BaseException:
    """`raise outer from inner`, for real."""

    def act() -> None:
        raise outer from inner

    return caught(act)


def in_context(outer: BaseException, inner: BaseException) -> BaseException:
    """`outer` raised while handling `inner` (implicit __context__)."""

    def act() -> None:
        try:
            raise inner
        except BaseException:
            raise outer  # noqa: B904 -- the implicit context is the point

    return caught(act)


def httpx_error(status: int, headers: dict[str, str] | None = None, body: Any = None) -> Any:
    def act() -> None:
        request = httpx.Request("GET", URL)
        response = httpx.Response(status, headers=headers, json=body, request=request)
        response.raise_for_status()

    return lambda: caught(act)


def requests_error(status: int, headers: dict[str, str] | None = None, body: bytes = b"") -> Any:
    def act() -> None:
        response = requests.Response()
        response.status_code = status
        response.reason = "Reason"
        response.url = URL
        response.headers.update(headers or {})
        response._content = body
        response.raise_for_status()

    return lambda: caught(act)


def urllib_error(status: int, reason: str, retry_after: str | None = None) -> Any:
    def build() -> BaseException:
        headers = email.message.Message()
        if retry_after is not None:
            headers["Retry-After"] = retry_after
        return urllib.error.HTTPError(URL, status, reason, headers, None)

    return build


def imap_error(text: bytes | str) -> Any:
    return lambda: imaplib.IMAP4.error(text)


def login_dropped() -> BaseException:
    """A real LoginError: a server that greets, then closes the connection at LOGIN."""
    import imapclient

    with scripted_server(b"") as port:  # LOGIN: the connection drops, unanswered
        client = imapclient.IMAPClient("127.0.0.1", port=port, ssl=False)
        try:
            client.login("alice", "secret")
        except imapclient.exceptions.LoginError as exc:
            return exc
        finally:
            client.shutdown()
    raise AssertionError("the login did not fail")


def pg(sqlstate: str, message: str = "server said no") -> Any:
    return lambda: psycopg.errors.lookup(sqlstate)(message)


@contextmanager
def sqlite_file() -> Iterator[str]:
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "chunks.db")
        with closing(sqlite3.connect(path)) as db:
            db.execute("CREATE TABLE t (x UNIQUE)")
            db.commit()
        yield path


def sqlite_busy() -> BaseException:
    """One connection holds BEGIN IMMEDIATE; the other, with timeout=0, cannot write."""
    with sqlite_file() as path:
        holder = sqlite3.connect(path, isolation_level=None)
        other = sqlite3.connect(path, isolation_level=None, timeout=0)
        with closing(holder), closing(other):
            holder.execute("BEGIN IMMEDIATE")
            error = caught(lambda: other.execute("BEGIN IMMEDIATE"))
            holder.execute("ROLLBACK")
            return error


def sqlite_locked_shared_cache() -> BaseException:
    uri = "file:chunksync-locked?mode=memory&cache=shared"
    writer = sqlite3.connect(uri, uri=True, isolation_level=None)
    reader = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=0)
    with closing(writer), closing(reader):
        writer.execute("CREATE TABLE t (x)")
        writer.execute("BEGIN")
        writer.execute("INSERT INTO t VALUES (1)")
        error = caught(lambda: reader.execute("SELECT * FROM t").fetchall())
        writer.execute("ROLLBACK")
        return error


def sqlite_unique() -> BaseException:
    with closing(sqlite3.connect(":memory:")) as db:
        db.execute("CREATE TABLE t (x UNIQUE)")
        db.execute("INSERT INTO t VALUES (1)")
        return caught(lambda: db.execute("INSERT INTO t VALUES (1)"))


def sqlite_readonly() -> BaseException:
    with sqlite_file() as path, closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        return caught(lambda: db.execute("INSERT INTO t VALUES (1)"))


def name_resolution_error() -> urllib3.exceptions.NameResolutionError:
    conn = urllib3.connection.HTTPSConnection("api.example.com")
    reason = socket.gaierror(-2, "Name or service not known")
    return urllib3.exceptions.NameResolutionError("api.example.com", conn, reason)


def requests_dns_error() -> BaseException:
    """What requests raises when DNS fails: ConnectionError(MaxRetryError(NameResolutionError))."""
    retry = urllib3.exceptions.MaxRetryError(None, "/v1/messages", name_resolution_error())  # type: ignore[arg-type]
    return in_context(requests.exceptions.ConnectionError(retry), retry)


CERT_TEXT = (
    "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: "
    "unable to get local issuer certificate (_ssl.c:1006)"
)


class GenericStatusError(Exception):
    """A client we do not know, with the usual attribute names."""

    def __init__(self, message: str, status_code: int, headers: dict[str, str]) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.headers = headers


class AiohttpLikeError(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(f"{status}, message='Bad Gateway'")
        self.status = status


class GoogleLikeHttpError(Exception):
    """googleapiclient's HttpError: `.resp` (a dict of headers with .status) and `.content`."""

    class Resp(dict[str, str]):
        status = 403

    def __init__(self, content: bytes) -> None:
        super().__init__("<HttpError 403>")
        self.resp = self.Resp({"content-type": "application/json"})
        self.content = content


class Psycopg2LikeError(Exception):
    """psycopg2 keeps the SQLSTATE in `.pgcode` (psycopg2 itself is not installed)."""

    pgcode = "40P01"


class BrokenStr(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no text for you")


# --- the original system's thirteen text cases -------------------------------------------------

ORIGINAL_TEXT_CASES = [
    ("Request timeout", C.TIMEOUT),
    ("429 Too Many Requests", C.RATE_LIMIT),
    ("Too many requests", C.RATE_LIMIT),
    ("Connection reset by peer", C.NETWORK),
    ("getaddrinfo ENOTFOUND api.example.com", C.NETWORK),
    ("DNS lookup failed", C.NETWORK),
    ("503 Service Unavailable", C.TEMPORARY),
    ("502 Bad Gateway", C.TEMPORARY),
    # Text groups 401 and 403 as auth, as the original did; a structured 403 is permission.
    ("401 Unauthorized", C.AUTH),
    ("403 Forbidden", C.AUTH),
    ("Access denied", C.PERMISSION),
    ("404 Not Found", C.NOT_FOUND),
    ("409 Conflict: duplicate key", C.DATA_CONFLICT),
    ("Failed to process record: invalid data", C.PROCESSING_ERROR),
    ("Something strange happened", C.UNKNOWN),
]


@pytest.mark.parametrize(("text", "category"), ORIGINAL_TEXT_CASES)
def test_original_text_cases(text: str, category: C) -> None:
    found = categorize(text)
    assert found.category is category
    assert found.rule == ("default" if category is C.UNKNOWN else f"text:{category.value}")


@pytest.mark.parametrize(
    "text", ["uid 4290 failed", "moved 5030 messages", "v1.429 released", "port 44290"]
)
def test_numbers_inside_other_numbers_are_not_statuses(text: str) -> None:
    assert categorize(text).category is C.UNKNOWN


# --- fixtures: (build, category, rule prefix) ---------------------------------------------------

Builder = Callable[[], BaseException]
Fixture = tuple[str, Builder, C, str]

HTTP_FIXTURES: list[Fixture] = [
    ("httpx-408", httpx_error(408), C.TIMEOUT, "http_status:408"),
    ("httpx-504", httpx_error(504), C.TIMEOUT, "http_status:504"),
    ("httpx-429", httpx_error(429), C.RATE_LIMIT, "http_status:429"),
    ("httpx-429-ra", httpx_error(429, {"Retry-After": "30"}), C.RATE_LIMIT, "http_status:429"),
    ("httpx-503-ra", httpx_error(503, {"Retry-After": "120"}), C.RATE_LIMIT, "http_status:503"),
    ("httpx-503", httpx_error(503), C.TEMPORARY, "http_status:503"),
    ("httpx-503-bad-ra", httpx_error(503, {"Retry-After": "soon"}), C.TEMPORARY, "http_status:503"),
    ("httpx-500", httpx_error(500), C.TEMPORARY, "http_status:500"),
    ("httpx-502", httpx_error(502), C.TEMPORARY, "http_status:502"),
    ("httpx-423", httpx_error(423), C.TEMPORARY, "http_status:423"),
    ("httpx-425", httpx_error(425), C.TEMPORARY, "http_status:425"),
    ("httpx-501", httpx_error(501), C.TEMPORARY, "http_status:501"),
    ("httpx-507", httpx_error(507), C.TEMPORARY, "http_status:507"),
    ("httpx-401", httpx_error(401), C.AUTH, "http_status:401"),
    ("httpx-403", httpx_error(403), C.PERMISSION, "http_status:403"),
    (
        "httpx-403-rateLimitExceeded",
        httpx_error(403, body={"error": {"errors": [{"reason": "rateLimitExceeded"}]}}),
        C.RATE_LIMIT,
        "http_status:403",
    ),
    (
        "httpx-403-userRateLimitExceeded",
        httpx_error(403, body={"error": {"errors": [{"reason": "userRateLimitExceeded"}]}}),
        C.RATE_LIMIT,
        "http_status:403",
    ),
    (
        "httpx-403-dailyLimitExceeded",
        httpx_error(403, body={"error": {"errors": [{"reason": "dailyLimitExceeded"}]}}),
        C.RATE_LIMIT,
        "http_status:403",
    ),
    (
        "httpx-403-other-reason",
        httpx_error(403, body={"error": {"errors": [{"reason": "insufficientPermissions"}]}}),
        C.PERMISSION,
        "http_status:403",
    ),
    ("httpx-403-ra", httpx_error(403, {"Retry-After": "60"}), C.RATE_LIMIT, "http_status:403"),
    ("httpx-404", httpx_error(404), C.NOT_FOUND, "http_status:404"),
    ("httpx-410", httpx_error(410), C.NOT_FOUND, "http_status:410"),
    ("httpx-409", httpx_error(409), C.DATA_CONFLICT, "http_status:409"),
    ("httpx-400", httpx_error(400), C.PROCESSING_ERROR, "http_status:400"),
    ("httpx-422", httpx_error(422), C.PROCESSING_ERROR, "http_status:422"),
    ("httpx-418", httpx_error(418), C.PROCESSING_ERROR, "http_status:418"),
    ("requests-429", requests_error(429, {"Retry-After": "5"}), C.RATE_LIMIT, "http_status:429"),
    (
        "requests-503-date",
        requests_error(503, {"Retry-After": DATE_IN_8_MIN}),
        C.RATE_LIMIT,
        "http_status:503",
    ),
    ("requests-401", requests_error(401), C.AUTH, "http_status:401"),
    (
        "requests-403-quota",
        requests_error(403, body=b'{"error":{"errors":[{"reason":"rateLimitExceeded"}]}}'),
        C.RATE_LIMIT,
        "http_status:403",
    ),
    ("requests-404", requests_error(404), C.NOT_FOUND, "http_status:404"),
    ("requests-500", requests_error(500), C.TEMPORARY, "http_status:500"),
    (
        "requests-no-response",
        lambda: requests.HTTPError(f"404 Client Error: Not Found for url: {URL}"),
        C.NOT_FOUND,
        "text:not_found",
    ),
    (
        "urllib-503-ra",
        urllib_error(503, "Service Unavailable", "120"),
        C.RATE_LIMIT,
        "http_status:503",
    ),
    ("urllib-503", urllib_error(503, "Service Unavailable"), C.TEMPORARY, "http_status:503"),
    ("urllib-429", urllib_error(429, "Too Many Requests", "7"), C.RATE_LIMIT, "http_status:429"),
    ("urllib-401", urllib_error(401, "Unauthorized"), C.AUTH, "http_status:401"),
    ("urllib-404", urllib_error(404, "Not Found"), C.NOT_FOUND, "http_status:404"),
    (
        "generic-status-code",
        lambda: GenericStatusError("slow down", 429, {"retry-after": "5"}),
        C.RATE_LIMIT,
        "http_status:429",
    ),
    ("aiohttp-like-status", lambda: AiohttpLikeError(502), C.TEMPORARY, "http_status:502"),
    (
        "google-like-403",
        lambda: GoogleLikeHttpError(b'{"reason": "userRateLimitExceeded"}'),
        C.RATE_LIMIT,
        "http_status:403",
    ),
]

IMAP_FIXTURES: list[Fixture] = [
    (
        "dovecot-authfailed",
        imap_error(b"[AUTHENTICATIONFAILED] Authentication failed."),
        C.AUTH,
        "imap_code:AUTHENTICATIONFAILED",
    ),
    (
        "dovecot-nonexistent",
        imap_error(b"[NONEXISTENT] Mailbox doesn't exist: Foo"),
        C.NOT_FOUND,
        "imap_code:NONEXISTENT",
    ),
    (
        "dovecot-no-mailbox-no-code",
        imap_error(b"Mailbox doesn't exist: Foo"),
        C.NOT_FOUND,
        "imap_text:mailbox_does_not_exist",
    ),
    (
        "dovecot-trycreate",
        imap_error(b"[TRYCREATE] Mailbox doesn't exist: Archive"),
        C.NOT_FOUND,
        "imap_code:TRYCREATE",
    ),
    (
        "dovecot-alreadyexists",
        imap_error(b"[ALREADYEXISTS] Mailbox already exists"),
        C.DATA_CONFLICT,
        "imap_code:ALREADYEXISTS",
    ),
    (
        "dovecot-cannot",
        imap_error(b"[CANNOT] Invalid mailbox name: Name must not have '/' characters."),
        C.PROCESSING_ERROR,
        "imap_code:CANNOT",
    ),
    (
        "dovecot-serverbug",
        imap_error(
            b"[SERVERBUG] Internal error occurred. Refer to server log for more information. "
            b"[2024-05-01 10:00:00]"
        ),
        C.TEMPORARY,
        "imap_code:SERVERBUG",
    ),
    (
        "dovecot-unavailable",
        imap_error(b"[UNAVAILABLE] Temporary authentication failure. [mail:2024-05-01 10:00:00]"),
        C.TEMPORARY,
        "imap_code:UNAVAILABLE",
    ),
    (
        "dovecot-inuse",
        imap_error(b"[INUSE] Mailbox is locked by another session"),
        C.TEMPORARY,
        "imap_code:INUSE",
    ),
    (
        "dovecot-expungeissued",
        imap_error(b"[EXPUNGEISSUED] Some of the requested messages no longer exist (1/2)"),
        C.TEMPORARY,
        "imap_code:EXPUNGEISSUED",
    ),
    (
        "dovecot-privacyrequired",
        imap_error(
            b"[PRIVACYREQUIRED] Plaintext authentication disallowed on non-secure (SSL/TLS) "
            b"connections."
        ),
        C.PERMISSION,
        "imap_code:PRIVACYREQUIRED",
    ),
    ("dovecot-noperm", imap_error(b"[NOPERM] Permission denied"), C.PERMISSION, "imap_code:NOPERM"),
    (
        "imap-authorizationfailed",
        imap_error("[AUTHORIZATIONFAILED] No permission to act as that user"),
        C.PERMISSION,
        "imap_code:AUTHORIZATIONFAILED",
    ),
    (
        "imap-contactadmin",
        imap_error("[CONTACTADMIN] Account suspended, contact your administrator"),
        C.PERMISSION,
        "imap_code:CONTACTADMIN",
    ),
    ("imap-expired", imap_error("[EXPIRED] Password expired"), C.AUTH, "imap_code:EXPIRED"),
    (
        "imap-corruption",
        imap_error("[CORRUPTION] Mailbox index is corrupted"),
        C.PROCESSING_ERROR,
        "imap_code:CORRUPTION",
    ),
    (
        "imap-clientbug",
        imap_error("[CLIENTBUG] Invalid message set"),
        C.PROCESSING_ERROR,
        "imap_code:CLIENTBUG",
    ),
    ("imap-limit", imap_error("[LIMIT] Too many search results"), C.RATE_LIMIT, "imap_code:LIMIT"),
    (
        "dovecot-overquota",
        imap_error(b"[OVERQUOTA] Quota exceeded (mailbox for user is full)"),
        C.TEMPORARY,
        "imap_code:OVERQUOTA",
    ),
    (
        "gmail-bandwidth-overquota",
        imap_error(b"[OVERQUOTA] Account exceeded command or bandwidth limits. (Failure)"),
        C.RATE_LIMIT,
        "imap_text:bandwidth",
    ),
    (
        "gmail-simultaneous",
        imap_error(b"[ALERT] Too many simultaneous connections. (Failure)"),
        C.RATE_LIMIT,
        "imap_text:connections",
    ),
    (
        "gmail-authfailed",
        imap_error(b"[AUTHENTICATIONFAILED] Invalid credentials (Failure)"),
        C.AUTH,
        "imap_code:AUTHENTICATIONFAILED",
    ),
    (
        "gmail-nonexistent",
        imap_error(b"[NONEXISTENT] Unknown Mailbox: Foo (Failure)"),
        C.NOT_FOUND,
        "imap_code:NONEXISTENT",
    ),
    (
        "gmail-throttled",
        imap_error(b"[THROTTLED] System busy"),
        C.RATE_LIMIT,
        "imap_code:THROTTLED",
    ),
    (
        "outlook-throttled",
        imap_error(b"Request is throttled. Suggested Backoff Time: 20000 milliseconds"),
        C.RATE_LIMIT,
        "imap_text:throttled",
    ),
    ("outlook-authenticate", imap_error(b"AUTHENTICATE failed."), C.AUTH, "text:auth"),
    ("outlook-login", imap_error(b"LOGIN failed."), C.AUTH, "text:auth"),
    (
        "imaplib-bad-command",
        imap_error(
            "SELECT command error: BAD [b'Error in IMAP command SELECT: Invalid arguments.']"
        ),
        C.PROCESSING_ERROR,
        "text:processing_error",
    ),
    (
        "imaplib-abort-eof",
        lambda: imaplib.IMAP4.abort("socket error: EOF"),
        C.NETWORK,
        "exception:imaplib.IMAP4.abort",
    ),
    (
        "imaplib-abort-bye",
        lambda: imaplib.IMAP4.abort("Server shutting down."),
        C.NETWORK,
        "exception:imaplib.IMAP4.abort",
    ),
    (
        "imaplib-abort-bye-code",
        lambda: imaplib.IMAP4.abort("[UNAVAILABLE] Server shutting down."),
        C.TEMPORARY,
        "imap_code:UNAVAILABLE",
    ),
    (
        "imapclient-login-code",
        lambda: imapclient.exceptions.LoginError(b"[AUTHENTICATIONFAILED] Invalid credentials"),
        C.AUTH,
        "imap_code:AUTHENTICATIONFAILED",
    ),
    (
        "imapclient-login-plain",
        lambda: imapclient.exceptions.LoginError("b'Invalid login'"),
        C.AUTH,
        "exception:imapclient.LoginError",
    ),
    (
        "imapclient-login-connection-dropped",
        login_dropped,
        C.NETWORK,
        "exception:imapclient.LoginError.connection_lost",
    ),
    (
        "imapclient-abort",
        lambda: imapclient.exceptions.IMAPClientAbortError("socket error: EOF"),
        C.NETWORK,
        "exception:imaplib.IMAP4.abort",
    ),
    (
        "imapclient-readonly",
        lambda: imapclient.exceptions.IMAPClientReadOnlyError("folder is read-only"),
        C.PERMISSION,
        "exception:imaplib.IMAP4.readonly",
    ),
]

DATABASE_FIXTURES: list[Fixture] = [
    ("pg-deadlock", pg("40P01", "deadlock detected"), C.TEMPORARY, "sqlstate:40P01"),
    ("pg-serialization", pg("40001"), C.TEMPORARY, "sqlstate:40001"),
    ("pg-lock-not-available", pg("55P03"), C.TEMPORARY, "sqlstate:55P03"),
    ("pg-unique", pg("23505", "duplicate key value"), C.DATA_CONFLICT, "sqlstate:23505"),
    ("pg-foreign-key", pg("23503"), C.DATA_CONFLICT, "sqlstate:class23"),
    ("pg-not-null", pg("23502"), C.DATA_CONFLICT, "sqlstate:class23"),
    ("pg-invalid-password", pg("28P01"), C.AUTH, "sqlstate:28P01"),
    ("pg-invalid-authorization", pg("28000"), C.AUTH, "sqlstate:28000"),
    ("pg-insufficient-privilege", pg("42501"), C.PERMISSION, "sqlstate:42501"),
    ("pg-connection-failure", pg("08006"), C.NETWORK, "sqlstate:class08"),
    ("pg-connection-exception", pg("08000"), C.NETWORK, "sqlstate:class08"),
    ("pg-unable-to-connect", pg("08001"), C.NETWORK, "sqlstate:class08"),
    ("pg-admin-shutdown", pg("57P01"), C.TEMPORARY, "sqlstate:57P01"),
    ("pg-crash-shutdown", pg("57P02"), C.TEMPORARY, "sqlstate:57P02"),
    ("pg-cannot-connect-now", pg("57P03"), C.TEMPORARY, "sqlstate:57P03"),
    ("pg-too-many-connections", pg("53300"), C.RATE_LIMIT, "sqlstate:53300"),
    ("pg-query-canceled", pg("57014"), C.TIMEOUT, "sqlstate:57014"),
    ("pg-undefined-table", pg("42P01"), C.PROCESSING_ERROR, "sqlstate:class42"),
    ("pg-invalid-text", pg("22P02"), C.PROCESSING_ERROR, "sqlstate:class22"),
    ("pg-disk-full", pg("53100"), C.TEMPORARY, "sqlstate:class53"),
    (
        "pg-operational-no-sqlstate",
        lambda: psycopg.OperationalError(
            'connection failed: connection to server at "127.0.0.1", port 5432 failed: '
            "Connection refused"
        ),
        C.NETWORK,
        "text:network",
    ),
    ("psycopg2-pgcode", Psycopg2LikeError, C.TEMPORARY, "sqlstate:40P01"),
    (
        "backend-error-sqlstate",
        lambda: BackendError("write failed", sqlstate="23505"),
        C.DATA_CONFLICT,
        "sqlstate:23505",
    ),
    (
        "backend-busy",
        lambda: BackendBusy("database is busy"),
        C.TEMPORARY,
        "exception:chunksync.BackendBusy",
    ),
    (
        "backend-unavailable-from-password",
        lambda: chained(BackendUnavailable("cannot connect"), pg("28P01")()),
        C.AUTH,
        "sqlstate:28P01",
    ),
    (
        "backend-unavailable-alone",
        lambda: chained(
            BackendUnavailable("cannot connect"), psycopg.OperationalError("connection failed")
        ),
        C.NETWORK,
        "exception:chunksync.BackendUnavailable",
    ),
    (
        "backend-busy-from-deadlock",
        lambda: chained(BackendBusy("lost the race"), pg("40P01")()),
        C.TEMPORARY,
        "exception:chunksync.BackendBusy",
    ),
    ("sqlite-busy", sqlite_busy, C.TEMPORARY, "sqlite:SQLITE_BUSY"),
    ("sqlite-locked", sqlite_locked_shared_cache, C.TEMPORARY, "sqlite:SQLITE_LOCKED"),
    ("sqlite-unique", sqlite_unique, C.DATA_CONFLICT, "sqlite:SQLITE_CONSTRAINT"),
    ("sqlite-readonly", sqlite_readonly, C.PERMISSION, "sqlite:SQLITE_READONLY"),
    (
        "sqlite-locked-text-only",
        lambda: sqlite3.OperationalError("database is locked"),
        C.TEMPORARY,
        "sqlite:database_is_locked",
    ),
    (
        "integrity-conflict-from-sqlite",
        lambda: chained(IntegrityConflict("duplicate chunk"), sqlite_unique()),
        C.DATA_CONFLICT,
        "sqlite:SQLITE_CONSTRAINT",
    ),
]

PYTHON_FIXTURES: list[Fixture] = [
    (
        "gaierror",
        lambda: socket.gaierror(-2, "Name or service not known"),
        C.NETWORK,
        "exception:socket.gaierror",
    ),
    (
        "gaierror-again",
        lambda: socket.gaierror(-3, "Temporary failure in name resolution"),
        C.NETWORK,
        "exception:socket.gaierror",
    ),
    ("herror", lambda: socket.herror(1, "Unknown host"), C.NETWORK, "exception:socket.herror"),
    (
        "urllib3-name-resolution",
        name_resolution_error,
        C.NETWORK,
        "exception:urllib3.NameResolutionError",
    ),
    (
        "urllib3-new-connection",
        lambda: urllib3.exceptions.NewConnectionError(
            urllib3.connection.HTTPConnection("127.0.0.1", 1),
            "Failed to establish a new connection: [Errno 111] Connection refused",
        ),
        C.NETWORK,
        "exception:urllib3.NewConnectionError",
    ),
    ("requests-dns", requests_dns_error, C.NETWORK, "exception:requests.ConnectionError"),
    (
        "ssl-cert-verify",
        lambda: ssl.SSLCertVerificationError(1, CERT_TEXT),
        C.PERMISSION,
        "exception:ssl.certificate_verify_failed",
    ),
    (
        "ssl-cert-hostname",
        lambda: ssl.SSLCertVerificationError(1, "hostname 'imap.example.com' doesn't match"),
        C.PERMISSION,
        "exception:ssl.SSLCertVerificationError",
    ),
    (
        "httpx-connect-cert",
        lambda: chained(httpx.ConnectError(CERT_TEXT), ssl.SSLCertVerificationError(1, CERT_TEXT)),
        C.PERMISSION,
        "exception:ssl.certificate_verify_failed",
    ),
    (
        "requests-ssl-cert",
        lambda: requests.exceptions.SSLError(CERT_TEXT),
        C.PERMISSION,
        "exception:ssl.certificate_verify_failed",
    ),
    (
        "ssl-other",
        lambda: ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1006)"),
        C.NETWORK,
        "exception:ssl.SSLError",
    ),
    ("timeout-error", lambda: TimeoutError("timed out"), C.TIMEOUT, "exception:TimeoutError"),
    (
        "socket-timeout",
        lambda: socket.timeout("timed out"),  # noqa: UP041 -- the alias is what old code raises
        C.TIMEOUT,
        "exception:TimeoutError",
    ),
    (
        "httpx-read-timeout",
        lambda: httpx.ReadTimeout("The read operation timed out"),
        C.TIMEOUT,
        "exception:httpx.TimeoutException",
    ),
    (
        "httpx-connect-timeout",
        lambda: httpx.ConnectTimeout("timed out"),
        C.TIMEOUT,
        "exception:httpx.TimeoutException",
    ),
    (
        "requests-read-timeout",
        lambda: requests.exceptions.ReadTimeout("Read timed out. (read timeout=10)"),
        C.TIMEOUT,
        "exception:requests.Timeout",
    ),
    (
        # ConnectTimeout is both a ConnectionError and a Timeout: the timeout is more specific.
        "requests-connect-timeout",
        lambda: requests.exceptions.ConnectTimeout("Connection to api.example.com timed out."),
        C.TIMEOUT,
        "exception:requests.Timeout",
    ),
    (
        "urllib3-read-timeout",
        lambda: urllib3.exceptions.ReadTimeoutError(None, URL, "Read timed out."),  # type: ignore[arg-type]
        C.TIMEOUT,
        "exception:urllib3.TimeoutError",
    ),
    (
        "connection-reset",
        lambda: ConnectionResetError(errno.ECONNRESET, "Connection reset by peer"),
        C.NETWORK,
        "exception:ConnectionError",
    ),
    (
        "connection-refused",
        lambda: ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"),
        C.NETWORK,
        "exception:ConnectionError",
    ),
    (
        "broken-pipe",
        lambda: BrokenPipeError(errno.EPIPE, "Broken pipe"),
        C.NETWORK,
        "exception:ConnectionError",
    ),
    (
        "connection-aborted",
        lambda: ConnectionAbortedError(errno.ECONNABORTED, "Software caused connection abort"),
        C.NETWORK,
        "exception:ConnectionError",
    ),
    (
        "httpx-connect-error",
        lambda: httpx.ConnectError("[Errno 111] Connection refused"),
        C.NETWORK,
        "exception:httpx.NetworkError",
    ),
    (
        "httpx-read-error",
        lambda: httpx.ReadError("[Errno 104] Connection reset by peer"),
        C.NETWORK,
        "exception:httpx.NetworkError",
    ),
    (
        "httpx-remote-protocol",
        lambda: httpx.RemoteProtocolError("Server disconnected without sending a response."),
        C.NETWORK,
        "exception:httpx.RemoteProtocolError",
    ),
    (
        "requests-connection-error",
        lambda: requests.exceptions.ConnectionError(
            "('Connection aborted.', RemoteDisconnected())"
        ),
        C.NETWORK,
        "exception:requests.ConnectionError",
    ),
    (
        "oserror-enetunreach",
        lambda: OSError(errno.ENETUNREACH, "Network is unreachable"),
        C.NETWORK,
        "exception:errno.ENETUNREACH",
    ),
    (
        "oserror-ehostunreach",
        lambda: OSError(errno.EHOSTUNREACH, "No route to host"),
        C.NETWORK,
        "exception:errno.EHOSTUNREACH",
    ),
    (
        "permission-error",
        lambda: PermissionError(errno.EACCES, "Permission denied", "/var/mail/bob"),
        C.PERMISSION,
        "exception:PermissionError",
    ),
    (
        "file-not-found",
        lambda: FileNotFoundError(errno.ENOENT, "No such file or directory", "/srv/Maildir/cur"),
        C.NOT_FOUND,
        "exception:FileNotFoundError",
    ),
    (
        "file-exists",
        lambda: FileExistsError(errno.EEXIST, "File exists", "/srv/Maildir/tmp/1.eml"),
        C.DATA_CONFLICT,
        "exception:FileExistsError",
    ),
    (
        "json-decode",
        lambda: caught(lambda: json.loads("{")),
        C.PROCESSING_ERROR,
        "exception:json.JSONDecodeError",
    ),
    (
        "unicode-decode",
        lambda: caught(lambda: b"\xff\xfe\xfa".decode("utf-8")),
        C.PROCESSING_ERROR,
        "exception:UnicodeError",
    ),
    (
        "value-error",
        lambda: caught(lambda: int("not a number")),
        C.PROCESSING_ERROR,
        "exception:ValueError",
    ),
    (
        "key-error",
        lambda: caught(lambda: {}["uid"]),
        C.PROCESSING_ERROR,
        "exception:KeyError",
    ),
    (
        "type-error",
        lambda: caught(lambda: operator.add(None, 1)),
        C.PROCESSING_ERROR,
        "exception:TypeError",
    ),
    ("memory-error", MemoryError, C.PROCESSING_ERROR, "exception:MemoryError"),
    ("not-found", lambda: NotFound("no queue q1"), C.NOT_FOUND, "exception:chunksync.NotFound"),
    (
        "configuration",
        lambda: ConfigurationError("unknown source kind 'pop3'"),
        C.PROCESSING_ERROR,
        "exception:chunksync.ConfigurationError",
    ),
    ("text-only", lambda: RuntimeError("Request timeout"), C.TIMEOUT, "text:timeout"),
    ("no-signal", lambda: RuntimeError("Something strange"), C.UNKNOWN, "default"),
    ("broken-str", BrokenStr, C.UNKNOWN, "default"),
]

CONTROL_FIXTURES: list[Fixture] = [
    (
        "retry-later",
        lambda: RetryLater("slow down", delay_s=12.5),
        C.RATE_LIMIT,
        "control:retry_later",
    ),
    (
        "retry-later-temporary",
        lambda: RetryLater("busy", delay_s=5, category="temporary"),
        C.TEMPORARY,
        "control:retry_later",
    ),
    (
        "retry-later-bad-category",
        lambda: RetryLater("?", delay_s=5, category="bogus"),
        C.RATE_LIMIT,
        "control:retry_later",
    ),
    ("abort", lambda: Abort("message is malformed"), C.PROCESSING_ERROR, "control:abort"),
    (
        "abort-wins-over-cause",
        lambda: chained(Abort("giving up"), TimeoutError()),
        C.PROCESSING_ERROR,
        "control:abort",
    ),
]


def _cycle() -> BaseException:
    first, second = RuntimeError("first"), RuntimeError("second")
    first.__context__, second.__context__ = second, first
    return first


CHAIN_FIXTURES: list[Fixture] = [
    (
        "source-error-from-dns",
        lambda: chained(
            SourceError("sync failed"), socket.gaierror(-2, "Name or service not known")
        ),
        C.NETWORK,
        "exception:socket.gaierror",
    ),
    (
        "implicit-context",
        lambda: in_context(RuntimeError("cleanup failed"), ConnectionResetError(104, "reset")),
        C.NETWORK,
        "exception:ConnectionError",
    ),
    (
        "wrapper-from-http",
        lambda: chained(SourceError("fetch failed"), httpx_error(429, {"Retry-After": "3"})()),
        C.RATE_LIMIT,
        "http_status:429",
    ),
    (
        # Structured signals anywhere in the chain beat the outer exception's text.
        "text-outer-structured-inner",
        lambda: chained(RuntimeError("timeout while syncing"), pg("40P01")()),
        C.TEMPORARY,
        "sqlstate:40P01",
    ),
    (
        "first-structured-wins",
        lambda: chained(ConnectionResetError(104, "reset"), TimeoutError("timed out")),
        C.NETWORK,
        "exception:ConnectionError",
    ),
    (
        "deep-chain",
        lambda: chained(
            SourceError("a"), chained(RuntimeError("b"), chained(RuntimeError("c"), pg("53300")()))
        ),
        C.RATE_LIMIT,
        "sqlstate:53300",
    ),
    (
        "imap-wrapped",
        lambda: chained(SourceError("select failed"), imap_error(b"[NONEXISTENT] No mailbox")()),
        C.NOT_FOUND,
        "imap_code:NONEXISTENT",
    ),
    (
        "urllib-url-error-reason",
        lambda: urllib.error.URLError(TimeoutError("timed out")),
        C.TIMEOUT,
        "exception:TimeoutError",
    ),
    (
        "exception-group",
        lambda: ExceptionGroup("batch", [ConnectionRefusedError(111, "refused")]),
        C.NETWORK,
        "exception:ConnectionError",
    ),
    ("cycle", _cycle, C.UNKNOWN, "default"),
]

ALL_FIXTURES = (
    HTTP_FIXTURES
    + IMAP_FIXTURES
    + DATABASE_FIXTURES
    + PYTHON_FIXTURES
    + CONTROL_FIXTURES
    + CHAIN_FIXTURES
)


def test_there_are_at_least_a_hundred_fixtures() -> None:
    assert len(ALL_FIXTURES) >= 100
    assert len({name for name, *_ in ALL_FIXTURES}) == len(ALL_FIXTURES)


@pytest.mark.parametrize(
    ("build", "category", "rule"),
    [pytest.param(build, category, rule, id=name) for name, build, category, rule in ALL_FIXTURES],
)
def test_real_failures(build: Builder, category: C, rule: str) -> None:
    error = build()
    assert isinstance(error, BaseException)
    found = categorize(error)
    assert found.category is category, found
    assert found.rule.startswith(rule), found
    assert categorize(error) == found  # deterministic


@pytest.mark.parametrize(
    ("build", "retry_after_s"),
    [
        (httpx_error(429, {"Retry-After": "30"}), 30.0),
        (httpx_error(503, {"Retry-After": "86400"}), RETRY_AFTER_CAP_SECONDS),
        (httpx_error(503, {"Retry-After": "-5"}), None),
        (urllib_error(503, "Service Unavailable", "120"), 120.0),
        (lambda: GenericStatusError("slow", 429, {"retry-after": "5"}), 5.0),
        (imap_error(b"Request is throttled. Suggested Backoff Time: 182 milliseconds"), 0.182),
        (lambda: RetryLater("slow", delay_s=12.5), 12.5),
        (lambda: RetryLater("slow", delay_s=10**9), RETRY_AFTER_CAP_SECONDS),
        (lambda: RetryLater("slow", delay_s=-1), None),
        (lambda: RetryLater("slow", delay_s=math.inf), None),
        (lambda: RetryLater("slow", delay_s=math.nan), None),
    ],
)
def test_retry_after_is_carried(build: Builder, retry_after_s: float | None) -> None:
    assert categorize(build()).retry_after_s == retry_after_s


def test_http_date_retry_after_from_requests() -> None:
    found = categorize(requests_error(503, {"Retry-After": DATE_IN_8_MIN})())
    assert found.category is C.RATE_LIMIT
    assert found.retry_after_s is not None
    assert 0.0 <= found.retry_after_s <= RETRY_AFTER_CAP_SECONDS


def test_categorize_never_raises_on_hostile_attributes() -> None:
    class Hostile(Exception):
        @property
        def status_code(self) -> int:
            raise RuntimeError("boom")

        @property
        def sqlstate(self) -> str:
            raise RuntimeError("boom")

        @property
        def response(self) -> object:
            raise RuntimeError("boom")

    found = categorize(Hostile("Connection reset by peer"))
    assert found == Categorization(C.NETWORK, "text:network")


# --- Retry-After --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("120", 120.0),
        (" 30 ", 30.0),
        ("0", 0.0),
        (b"45", 45.0),
        (7, 7.0),
        (0, 0.0),
        ("86400", RETRY_AFTER_CAP_SECONDS),
        (10**8, RETRY_AFTER_CAP_SECONDS),
        (DATE_IN_8_MIN, 480.0),
        ("Wednesday, 21-Oct-15 07:28:00 GMT", 480.0),  # RFC 850, obsolete but allowed
        ("Wed Oct 21 07:28:00 2015", 480.0),  # asctime, obsolete but allowed
        ("Wed, 21 Oct 2015 07:00:00 GMT", 0.0),  # in the past
        ("Fri, 31 Dec 9999 23:59:59 GMT", RETRY_AFTER_CAP_SECONDS),
    ],
)
def test_parse_retry_after(value: object, seconds: float) -> None:
    assert parse_retry_after(value, now=NOW) == seconds


@pytest.mark.parametrize(
    "value",
    [
        "inf",
        "nan",
        "-5",
        "1.5",
        "1" * 20,
        "+5",
        "1e3",
        "0x10",
        "５",  # a full-width digit is not a DIGIT
        "",
        "   ",
        "soon",
        "Wed, 32 Oct 2015 99:28:00 GMT",
        "Wed, 21 Foo 2015 07:28:00 GMT",
        b"\xff\xfe",
        -5,
        10**20,
        1.5,
        math.inf,
        math.nan,
        True,
        False,
        None,
        ["5"],
        object(),
    ],
)
def test_parse_retry_after_ignores_garbage(value: object) -> None:
    assert parse_retry_after(value, now=NOW) is None


def test_parse_retry_after_cap() -> None:
    assert parse_retry_after("120", cap_s=10) == 10.0
    assert parse_retry_after("120", cap_s=0) == 0.0
    assert parse_retry_after("120", cap_s=math.inf) == 120.0
    assert parse_retry_after("120", cap_s=math.nan) == 120.0  # nan falls back to the default cap


def test_parse_retry_after_uses_the_clock_by_default() -> None:
    assert parse_retry_after("Thu, 01 Jan 1970 00:00:00 GMT") == 0.0


# --- properties ---------------------------------------------------------------------------------

FRAGMENTS = st.sampled_from(
    [
        "429",
        "4290",
        "503",
        "403",
        " ",
        "[",
        "]",
        "[UNAVAILABLE]",
        "[OVERQUOTA]",
        "timeout",
        "denied",
        "Suggested Backoff Time: 99999999999999 milliseconds",
        "Request is throttled.",
        "Mailbox doesn't exist",
        "\x00",
        "é",
    ]
)
TEXTS = st.one_of(st.text(), st.lists(st.one_of(FRAGMENTS, st.text(max_size=5))).map("".join))
ATTRIBUTE_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=12),
    st.binary(max_size=12),
    st.dictionaries(st.text(max_size=12), st.text(max_size=12), max_size=3),
    st.sampled_from(["40P01", "23505", "08006", "SQLITE_BUSY", "Retry-After"]),
)
ATTRIBUTE_NAMES = st.sampled_from(
    [
        "status",
        "status_code",
        "code",
        "headers",
        "hdrs",
        "response",
        "resp",
        "sqlstate",
        "pgcode",
        "sqlite_errorname",
        "errno",
        "reason",
        "content",
        "body",
        "category",
        "delay_s",
    ]
)
EXCEPTION_CLASSES = st.sampled_from(
    [
        Exception,
        ValueError,
        OSError,
        TimeoutError,
        ConnectionResetError,
        imaplib.IMAP4.error,
        imaplib.IMAP4.abort,
        sqlite3.OperationalError,
        psycopg.Error,
        httpx.HTTPError,
        requests.RequestException,
        ssl.SSLError,
        SourceError,
        BackendError,
    ]
)


@st.composite
def exceptions(draw: st.DrawFn) -> BaseException:
    cls = draw(EXCEPTION_CLASSES)
    args = draw(st.lists(st.one_of(TEXTS, st.binary(max_size=20), st.integers()), max_size=3))
    try:
        error: BaseException = cls(*args)
    except Exception:  # a constructor that wants exactly one message
        error = cls(repr(args))
    for name, value in draw(st.dictionaries(ATTRIBUTE_NAMES, ATTRIBUTE_VALUES, max_size=4)).items():
        try:
            setattr(error, name, value)
        except Exception:  # read-only attributes on some classes
            pass
    if draw(st.booleans()):
        error.__cause__ = draw(st.sampled_from([TimeoutError(), ValueError(), error]))
    return error


@given(TEXTS)
def test_categorize_text_is_total_and_deterministic(text: str) -> None:
    first = categorize(text)
    assert first.category in C
    assert categorize(text) == first


@given(exceptions())
def test_categorize_exception_is_total_and_deterministic(error: BaseException) -> None:
    first = categorize(error)
    assert first.category in C
    assert first.rule
    assert categorize(error) == first
    if first.retry_after_s is not None:
        assert 0.0 <= first.retry_after_s <= RETRY_AFTER_CAP_SECONDS


@given(
    st.one_of(
        st.text(),
        st.binary(),
        st.integers(),
        st.floats(),
        st.booleans(),
        st.none(),
        st.from_regex(r"\A\s*-?[0-9]{1,25}(\.[0-9]+)?\s*\Z"),
    ),
    st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=False)),
)
def test_parse_retry_after_is_bounded(value: object, now: float | None) -> None:
    seconds = parse_retry_after(value, now=now)
    assert seconds is None or 0.0 <= seconds <= RETRY_AFTER_CAP_SECONDS


@given(
    st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(9999, 1, 1)),
    st.floats(min_value=0, max_value=4_000_000_000),
    st.floats(min_value=0, max_value=10**6),
)
def test_parse_retry_after_http_dates(moment: datetime, now: float, cap_s: float) -> None:
    value = email.utils.format_datetime(moment.replace(tzinfo=UTC), usegmt=True)
    expected = min(max(moment.replace(tzinfo=UTC, microsecond=0).timestamp() - now, 0.0), cap_s)
    assert parse_retry_after(value, now=now, cap_s=cap_s) == pytest.approx(expected)
