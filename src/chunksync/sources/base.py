"""Sources plan a sync into chunk payloads and process one chunk at a time.

A source is registered for a URI scheme (its `kind`): the queue `imap://alice@host/INBOX` is
processed by the source whose kind is `imap`. A plain function registered with `@app.handler()`
becomes a source that only processes (its queues are created from payloads).
"""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from chunksync.context import ChunkContext
from chunksync.exceptions import ConfigurationError
from chunksync.retry import RetryPolicy
from chunksync.runtime import asyncrun

# dict first in a tuple: a plain dict payload is told apart without the abstract class check
_MAPPINGS = (dict, Mapping)

# A plain function or an `async def` one (run on its slot thread's event loop).
Handler = Callable[[ChunkContext], "int | Awaitable[int | None] | None"]


def kind_of(uri: str) -> str:
    """The source kind a URI names: its scheme (imaps -> imap), or the whole string if none."""
    try:
        scheme = urlsplit(uri).scheme.lower() if "://" in uri else uri.strip().lower()
    except ValueError:  # e.g. an unclosed [ of an IPv6 host: the scheme is still the prefix
        scheme = uri.split("://", 1)[0].strip().lower()
    return {"imaps": "imap"}.get(scheme, scheme)


def default_dependency(uri: str, kind: str) -> str:
    """A source's default dependency: kind://user@host (or the kind alone when `uri` names no
    host)."""
    parts = urlsplit(uri)
    host, user = parts.hostname or "", parts.username or ""
    where = f"{user}@{host}" if user and host else host
    return f"{kind}://{where}" if where else kind


class Source(abc.ABC):
    kind: str = ""
    # The retry policy of the queues this source plans (registered with the source); None: the
    # default policy.
    policy: RetryPolicy | None = None

    def plan(self, uri: str, *, chunk_size: int) -> Iterable[Any]:
        """Payloads of the chunks that sync `uri`; sources that cannot plan refuse clearly."""
        raise ConfigurationError(
            f"source '{self.kind}' cannot plan a sync by itself: create its queue from payloads"
        )

    @abc.abstractmethod
    def process(self, ctx: ChunkContext) -> int | None:
        """Do one chunk's work; return the number of items processed (None: the chunk size)."""

    def dependency(self, uri: str) -> str:
        """What the chunks of `uri` lean on: the host (or account) whose retry budget they share."""
        return default_dependency(uri, self.kind)

    def chunk_size(self, payload: Any) -> int:
        if isinstance(payload, _MAPPINGS):
            size = payload.get("size") or payload.get("count")
            if isinstance(size, int) and size >= 0:
                return size
        return 1

    def permits_held(self, dependency: str, permits: int) -> None:
        """This worker now holds `permits` connection permits of `dependency` (one went back:
        its slot found no more work). A source that keeps connections open between chunks
        closes the idle ones beyond that, so the fleet's open connections stay within the
        dependency's cap, not only the ones in use."""
        return None

    def close(self) -> None:
        """Release connections the source holds (called when a worker stops)."""
        return None


class FunctionSource(Source):
    """A handler function registered with @app.handler(kind)."""

    def __init__(self, kind: str, handler: Handler) -> None:
        self.kind = kind
        self._handler = handler

    def process(self, ctx: ChunkContext) -> int | None:
        return asyncrun.call(self._handler, ctx)
