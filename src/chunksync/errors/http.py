"""The HTTP detector: a 4xx/5xx status on an exception or its response, with its Retry-After.

Works with httpx, requests, urllib, urllib3, google-api-python-client and httplib2 without
importing any of them: the status, headers and body are read by attribute, safely.
"""

from __future__ import annotations

import re
import urllib.error
from collections.abc import Mapping

from chunksync.errors.categorization import Categorization
from chunksync.errors.chain import MAX_TEXT_CHARS, attr, decode, message
from chunksync.errors.retry_after import parse_retry_after
from chunksync.models import ErrorCategory

_RATE_LIMIT = ErrorCategory.RATE_LIMIT
_TEMPORARY = ErrorCategory.TEMPORARY

_HTTP_STATUS: Mapping[int, ErrorCategory] = {
    408: ErrorCategory.TIMEOUT,
    504: ErrorCategory.TIMEOUT,
    429: _RATE_LIMIT,
    500: _TEMPORARY,
    502: _TEMPORARY,
    423: _TEMPORARY,  # locked (WebDAV): the lock goes away
    425: _TEMPORARY,  # too early: replaying later is the point
    401: ErrorCategory.AUTH,
    404: ErrorCategory.NOT_FOUND,
    410: ErrorCategory.NOT_FOUND,
    409: ErrorCategory.DATA_CONFLICT,
}

# Google APIs answer a quota problem with 403 and one of these reasons in the body.
_RATE_LIMIT_REASONS = re.compile(
    r"\b(?:userRateLimitExceeded|rateLimitExceeded|dailyLimitExceeded)\b", re.IGNORECASE
)


def http_status(exc: BaseException) -> Categorization | None:
    """The status decides; a Retry-After (or Google's quota reasons) turns 503/403 into a limit."""
    response = attr(exc, "response")
    if response is None:
        response = attr(exc, "resp")  # google-api-python-client's HttpError
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
        category = _RATE_LIMIT if limited else ErrorCategory.PERMISSION
    elif category is None:
        category = ErrorCategory.PROCESSING_ERROR if status < 500 else _TEMPORARY
    return Categorization(category, f"http_status:{status}", retry_after)


def _http_status(exc: BaseException, response: object) -> int | None:
    candidates = [
        attr(response, "status_code"),
        attr(response, "status"),
        attr(exc, "status_code"),
        attr(exc, "status"),
    ]
    if isinstance(exc, urllib.error.HTTPError):
        candidates.insert(0, exc.code)
    for value in candidates:
        if isinstance(value, int) and not isinstance(value, bool) and 400 <= value <= 599:
            return value
    return None


def _http_headers(exc: BaseException, response: object) -> object:
    for candidate in (attr(response, "headers"), attr(exc, "headers"), attr(exc, "hdrs")):
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
    parts = [message(exc)]
    for candidate in (attr(response, "_content"), attr(exc, "content"), attr(exc, "body")):
        if isinstance(candidate, bytes | bytearray):
            parts.append(decode(candidate))
        elif isinstance(candidate, str):
            parts.append(candidate[:MAX_TEXT_CHARS])
    return "\n".join(parts)
