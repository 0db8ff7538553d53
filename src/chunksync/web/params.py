"""The chunk list's query parameters (text, status, category, queue, tenant, page, limit, offset),
read and checked.

Pages, the JSON API and the bulk actions select chunks from the same parameters
(chunksync.search); a bad value raises ChunksyncError, which `web.errors` answers with 400 (an
unknown queue: NotFound, 404).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.requests import Request

from chunksync import search
from chunksync.exceptions import ChunksyncError
from chunksync.models import ChunkStatus, ErrorCategory
from chunksync.web import views
from chunksync.web.state import dashboard

MAX_CHUNK_LIST_LIMIT = 1000
MAX_QUEUE_LIST_LIMIT = 1000
MAX_OFFSET = 10_000_000
PAGE_SIZE = 50
FILTER_NAMES = ("q", "status", "category", "queue", "tenant")


def chunk_filters(source: Request | Mapping[str, Any]) -> dict[str, str]:
    """The filters as given (empty when absent), to show them back in the page's form."""
    q = source.query_params if isinstance(source, Request) else source
    return {k: str(q.get(k, "") or "") for k in FILTER_NAMES}


def chunk_query(
    request: Request, filters: Mapping[str, str], *, limit: int = PAGE_SIZE, offset: int = 0
) -> search.ChunkQuery:
    """The search the filters ask for (the queue named by id or name). A tenant's view
    searches its tenant's chunks by name as well: row-level security alone would filter every
    chunk of the table, where the tenant's index reads its own."""
    board = dashboard(request)
    app = board.app
    queue = filters.get("queue") or ""
    return search.ChunkQuery(
        text=filters.get("q") or "",
        status=_enum(ChunkStatus, filters.get("status")),
        category=_enum(ErrorCategory, filters.get("category")),
        queue_id=app.manager.get_queue(queue).id if queue else None,
        tenant=filters.get("tenant") or board.tenant,
        limit=limit,
        offset=offset,
    )


def chunk_list(request: Request, filters: dict[str, str]) -> tuple[list[dict[str, Any]], int]:
    """The chunks the filters, the limit and the offset select (the API's list), and how many
    match in all."""
    limit = _int(request, "limit", views.CHUNK_LIST_LIMIT, 1, MAX_CHUNK_LIST_LIMIT)
    offset = _int(request, "offset", 0, 0, MAX_OFFSET)
    query = chunk_query(request, filters, limit=limit, offset=offset)
    backend = dashboard(request).app.backend
    found = search.search(backend, query)
    return [views.chunk_data(c) for c in found], search.count(backend, query)


def chunk_page(request: Request, filters: dict[str, str]) -> dict[str, Any]:
    """One page of the chunk list, with what the pager shows."""
    number = _int(request, "page", 1, 1, MAX_OFFSET // PAGE_SIZE)
    query = chunk_query(request, filters, offset=(number - 1) * PAGE_SIZE)
    backend = dashboard(request).app.backend
    total = search.count(backend, query)
    pages = max(1, -(-total // PAGE_SIZE))
    return {
        "chunks": [views.chunk_data(c) for c in search.search(backend, query)],
        "total": total,
        "page": number,
        "pages": pages,
        "first": query.offset + 1,
    }


def queue_page(request: Request) -> dict[str, Any]:
    """One page of the queue table (`?page=N`), with what the pager shows."""
    size = views.QUEUE_PAGE_SIZE
    number = _int(request, "page", 1, 1, MAX_OFFSET // size)
    queues, total = views.queue_page(dashboard(request).app, size, (number - 1) * size)
    pages = max(1, -(-total // size))
    first = (number - 1) * size + 1
    return {"queues": queues, "total": total, "page": number, "pages": pages, "first": first}


def queue_list(request: Request) -> tuple[list[dict[str, Any]], int]:
    """The queues `?limit=` (default and most: MAX_QUEUE_LIST_LIMIT) and `?offset=` select (the
    API's list), and how many there are in all."""
    limit = _int(request, "limit", MAX_QUEUE_LIST_LIMIT, 1, MAX_QUEUE_LIST_LIMIT)
    offset = _int(request, "offset", 0, 0, MAX_OFFSET)
    return views.queue_page(dashboard(request).app, limit, offset)


def _enum(kind: type[ChunkStatus] | type[ErrorCategory], value: str | None) -> Any:
    if not value:
        return None
    try:
        return kind(value)
    except ValueError:
        raise ChunksyncError(f"unknown {kind.__name__} '{value}'") from None


def optional_int(request: Request, name: str, low: int, high: int) -> int | None:
    """A whole number the query may give (`?limit=`), None when it gives none."""
    if name not in request.query_params:
        return None
    return _int(request, name, low, low, high)


def _int(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name, str(default))
    try:
        value = int(raw)
    except ValueError:
        raise ChunksyncError(f"{name} must be a whole number") from None
    if not low <= value <= high:
        raise ChunksyncError(f"{name} must be between {low} and {high}")
    return value
