"""The links of an exception chain, and reading a link without ever raising.

A failure rarely arrives alone: libraries wrap the real cause in `__cause__`, `__context__`,
`.reason` (urllib, urllib3), an argument (requests) or an exception group. Categorization asks
each link in turn, so this module lists them, nearest first, each once, and bounded.
"""

from __future__ import annotations

from collections import deque
from typing import Any

MAX_TEXT_CHARS = 16_384  # the signal is at the start of a message, never deep in a dump
_MAX_CHAIN_LINKS = 32  # a pathological chain must not make categorization slow


def chain(exc: BaseException) -> list[BaseException]:
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
    args = attr(exc, "args")
    group = attr(exc, "exceptions") if isinstance(exc, BaseExceptionGroup) else ()
    candidates = [
        exc.__cause__,
        exc.__context__,
        attr(exc, "reason"),
        *(args if isinstance(args, tuple) else ()),
        *(group if isinstance(group, tuple) else ()),
    ]
    return [c for c in candidates if isinstance(c, BaseException)]


def attr(obj: object, name: str) -> Any:
    """getattr that survives properties which raise (httpx's, for one, on unread responses)."""
    try:
        return getattr(obj, name, None)
    except Exception:
        return None


def message(exc: BaseException) -> str:
    """The exception's text; imaplib passes the server's bytes, so decode them."""
    try:
        args = exc.args
        if isinstance(args, tuple) and any(isinstance(a, bytes | bytearray) for a in args):
            text = " ".join(decode(a) if isinstance(a, bytes | bytearray) else str(a) for a in args)
        else:
            text = str(exc)
    except Exception:  # a broken __str__ leaves only the structured signals
        return ""
    return text[:MAX_TEXT_CHARS]


def decode(data: bytes | bytearray) -> str:
    """Bytes a server sent, as text, bounded; undecodable bytes never fail the reading."""
    return bytes(data[:MAX_TEXT_CHARS]).decode("utf-8", "replace")


def mro_names(exc: BaseException) -> frozenset[str]:
    """Qualified names of the exception's classes: optional libraries are matched by name."""
    return frozenset(f"{c.__module__}.{c.__qualname__}" for c in type(exc).__mro__)
