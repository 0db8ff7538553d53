"""How long a server asked us to wait: Retry-After values, and delays our own code computed.

HTTP answers with a Retry-After header, IMAP servers (Outlook) with milliseconds in their
text, handlers with `RetryLater(delay_s=...)`. Each becomes seconds, capped, or None for
garbage: a server's odd header must never make a worker wait forever, nor crash it.
"""

from __future__ import annotations

import email.utils
import math
import re
import time
from datetime import UTC

__all__ = ["RETRY_AFTER_CAP_SECONDS", "parse_retry_after", "valid_delay"]

RETRY_AFTER_CAP_SECONDS = 3600.0

_MAX_DELAY_DIGITS = 9  # ~31 years; longer "seconds" are garbage, not a request to wait forever
_MAX_DATE_CHARS = 64  # an HTTP-date is 29 characters

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


def valid_delay(value: object, cap: float = RETRY_AFTER_CAP_SECONDS) -> float | None:
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
