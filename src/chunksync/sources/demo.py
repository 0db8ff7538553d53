"""The demo source: chunks of simulated work that fail on a seeded script with every category.

`demo://faults?chunks=200&failure_rate=0.3&seed=7` plans 200 chunks. Each payload carries its
script, the outcome of each attempt (`ok` or a category), so a run is deterministic whatever the
order in which workers take the chunks. Failures are raised as the real exception types a sync
meets (urllib's HTTPError with Retry-After, ConnectionResetError, TimeoutError, ...), so the
demo exercises the real categorizer, policy and worker.
"""

from __future__ import annotations

import email.message
import random
import time
import urllib.error
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

from chunksync.context import ChunkContext
from chunksync.exceptions import ConfigurationError, InvalidPayload
from chunksync.models import ErrorCategory
from chunksync.sources.base import Source

KIND = "demo"
DEFAULT_CHUNKS = 200
DEFAULT_FAILURE_RATE = 0.3
DEFAULT_WORK_MS = 2.0
ITEMS_PER_CHUNK = 100
DEMO_URL = "https://api.example.com/v1/messages"

# How often each category shows up among failures: transient ones dominate, as in life.
FAILURE_MIX: dict[str, float] = {
    "timeout": 0.18,
    "rate_limit": 0.18,
    "network": 0.18,
    "temporary": 0.14,
    "auth": 0.06,
    "not_found": 0.06,
    "data_conflict": 0.05,
    "permission": 0.03,
    "processing_error": 0.08,
    "unknown": 0.04,
}


def _http_error(code: int, reason: str, retry_after: str | None = None) -> urllib.error.HTTPError:
    headers = email.message.Message()
    if retry_after is not None:
        headers["Retry-After"] = retry_after
    return urllib.error.HTTPError(DEMO_URL, code, reason, headers, None)


def make_failure(category: str, *, retry_after_s: int | None = 2) -> Exception:
    """A real exception of the kind a source raises for this category (a rate limit is a 429
    carrying `Retry-After: retry_after_s`)."""
    retry_after = None if retry_after_s is None else str(retry_after_s)
    factories: dict[str, Any] = {
        "timeout": lambda: TimeoutError("Request timeout: no response in 30 s"),
        "rate_limit": lambda: _http_error(429, "Too Many Requests", retry_after=retry_after),
        "network": lambda: ConnectionResetError(104, "Connection reset by peer"),
        "temporary": lambda: _http_error(503, "Service Unavailable"),
        "auth": lambda: _http_error(401, "Unauthorized"),
        "permission": lambda: _http_error(403, "Forbidden"),
        "not_found": lambda: _http_error(404, "Not Found"),
        "data_conflict": lambda: _http_error(409, "Conflict: duplicate message id"),
        "processing_error": lambda: ValueError("malformed data: unexpected end of JSON input"),
        "unknown": lambda: RuntimeError("the remote said something nobody expected"),
    }
    try:
        return factories[category]()  # type: ignore[no-any-return]
    except KeyError:
        raise InvalidPayload(f"unknown demo failure '{category}'") from None


def plan_scripts(chunks: int, failure_rate: float, seed: int) -> Iterator[list[str]]:
    """Per chunk, the outcome of each attempt until the first success (or 6 failures)."""
    rng = random.Random(seed)
    kinds, weights = zip(*FAILURE_MIX.items(), strict=True)
    for _ in range(chunks):
        script: list[str] = []
        while len(script) < 6 and rng.random() < failure_rate:
            kind = rng.choices(kinds, weights)[0]
            script.append(kind)
            if kind in ("permission", "not_found", "data_conflict"):
                break  # a permanent failure stays permanent
        script.append("ok")
        yield script


def _options(uri: str) -> dict[str, Any]:
    query = parse_qs(urlsplit(uri).query)

    def number(key: str, default: float, cast: Any) -> Any:
        raw = query.get(key, [None])[-1]
        if raw is None:
            return default
        try:
            return cast(raw)
        except ValueError:
            raise ConfigurationError(
                f"demo source: '{key}' must be a number, not '{raw}'"
            ) from None

    chunks = number("chunks", DEFAULT_CHUNKS, int)
    rate = number("failure_rate", DEFAULT_FAILURE_RATE, float)
    if chunks < 0 or not 0.0 <= rate <= 1.0:
        raise ConfigurationError("demo source: chunks must be >= 0 and failure_rate in [0, 1]")
    return {
        "chunks": chunks,
        "failure_rate": rate,
        "seed": number("seed", 1, int),
        "work_ms": number("work_ms", DEFAULT_WORK_MS, float),
    }


class DemoSource(Source):
    kind = KIND

    def plan(self, uri: str, *, chunk_size: int) -> Iterator[dict[str, Any]]:
        opts = _options(uri)
        for n, script in enumerate(
            plan_scripts(opts["chunks"], opts["failure_rate"], opts["seed"])
        ):
            yield {"n": n, "size": ITEMS_PER_CHUNK, "script": script, "work_ms": opts["work_ms"]}

    def dependency(self, uri: str) -> str:
        return "demo://api.example.com"

    def process(self, ctx: ChunkContext) -> int:
        payload = ctx.payload
        if not isinstance(payload, dict) or not isinstance(payload.get("script"), list):
            raise InvalidPayload("a demo chunk needs a 'script' list")
        script = payload["script"]
        outcome = script[min(ctx.attempt, len(script)) - 1]
        work_ms = float(payload.get("work_ms", DEFAULT_WORK_MS))
        if work_ms > 0:
            time.sleep(work_ms / 1000.0)
        if outcome != "ok":
            ErrorCategory(outcome)  # an unknown name is a bad payload, said clearly
            raise make_failure(outcome)
        return int(payload.get("size", ITEMS_PER_CHUNK))
