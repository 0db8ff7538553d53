"""The chunk list's query parameters (status, category, queue, limit), read and checked.

Pages and the JSON API list chunks from the same parameters; a bad value raises
ChunksyncError, which `web.errors` answers with 400 (an unknown queue: NotFound, 404).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from chunksync.exceptions import ChunksyncError
from chunksync.models import ChunkStatus, ErrorCategory
from chunksync.web import views
from chunksync.web.state import dashboard

MAX_CHUNK_LIST_LIMIT = 1000
FILTER_NAMES = ("status", "category", "queue")


def chunk_filters(request: Request) -> dict[str, str]:
    """The filters as given (empty when absent), to show them back in the page's form."""
    q = request.query_params
    return {k: q.get(k, "") for k in FILTER_NAMES}


def chunk_list(request: Request, filters: dict[str, str]) -> list[dict[str, Any]]:
    """The chunks the filters and the limit select."""
    return views.chunk_list(
        dashboard(request).app,
        status=_enum(ChunkStatus, filters["status"]),
        category=_enum(ErrorCategory, filters["category"]),
        queue=filters["queue"] or None,
        limit=_limit(request),
    )


def _enum(kind: type[ChunkStatus] | type[ErrorCategory], value: str | None) -> Any:
    if not value:
        return None
    try:
        return kind(value)
    except ValueError:
        raise ChunksyncError(f"unknown {kind.__name__} '{value}'") from None


def _limit(request: Request) -> int:
    raw = request.query_params.get("limit", str(views.CHUNK_LIST_LIMIT))
    try:
        value = int(raw)
    except ValueError:
        raise ChunksyncError("limit must be a whole number") from None
    if not 1 <= value <= MAX_CHUNK_LIST_LIMIT:
        raise ChunksyncError(f"limit must be between 1 and {MAX_CHUNK_LIST_LIMIT}")
    return value
