"""The Python exception class detector: the class (most specific first), then a bare errno.

Classes of optional libraries (httpx, requests, urllib3, imapclient) are named as strings and
matched against the qualified names in the exception's MRO, so they are never imported.
"""

from __future__ import annotations

import errno
import imaplib
import json
import re
import socket
import ssl
from collections.abc import Mapping

from chunksync.errors.categorization import Categorization
from chunksync.errors.chain import attr, message, mro_names
from chunksync.models import ErrorCategory

_TIMEOUT = ErrorCategory.TIMEOUT
_NETWORK = ErrorCategory.NETWORK
_AUTH = ErrorCategory.AUTH
_PERMISSION = ErrorCategory.PERMISSION
_PROCESSING = ErrorCategory.PROCESSING_ERROR

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
    (FileNotFoundError, ErrorCategory.NOT_FOUND),
    (FileExistsError, ErrorCategory.DATA_CONFLICT),
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


def python_class(exc: BaseException) -> Categorization | None:
    """Two wrappings that hide their cause come first; then the class table, then the errno."""
    names = mro_names(exc)
    if "imapclient.exceptions.LoginError" in names and isinstance(
        exc.__context__, imaplib.IMAP4.abort | OSError
    ):
        # IMAPClient turns any error during LOGIN into a LoginError, also a connection that
        # dropped (imaplib's abort) or failed: not a credentials problem.
        return Categorization(_NETWORK, "exception:imapclient.LoginError.connection_lost")
    if _is_tls_or_connect(exc, names) and _CERT_VERIFY_TEXT.search(message(exc)):
        # httpx and requests wrap ssl's verification error in their ConnectError.
        return Categorization(_PERMISSION, "exception:ssl.certificate_verify_failed")
    for matcher, category in _CLASS_RULES:
        if isinstance(matcher, str) and matcher in names:
            return Categorization(category, f"exception:{_short(matcher)}")
        if isinstance(matcher, type) and isinstance(exc, matcher):
            return Categorization(category, f"exception:{_class_label(matcher)}")
    code = attr(exc, "errno") if isinstance(exc, OSError) else None
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
