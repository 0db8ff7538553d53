"""Finding chunks: a free text and filters, a page at a time, and every match for a bulk action.

The text is matched in any case against a chunk's id, its payload (as stored JSON), its last
error and its dead reason; `%` and `_` in it are literal. The filters (status, last error
category, queue, tenant) are each optional. The dashboard's list and its bulk actions, and the
JSON API, ask this module, so that "everything matching" is the very set the page counted.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from chunksync.backends.base import Backend
from chunksync.models import Chunk, ChunkStatus, ErrorCategory

MAX_TEXT_CHARS = 200
BULK_PAGE = 500  # chunks read at once while collecting every match of a bulk action


@dataclass(frozen=True, slots=True)
class ChunkQuery:
    text: str = ""
    status: ChunkStatus | None = None
    category: ErrorCategory | None = None
    queue_id: str | None = None
    tenant: str | None = None
    limit: int = 50
    offset: int = 0

    def params(self) -> dict[str, object]:
        return {
            "pattern": like_pattern(self.text),
            "status": None if self.status is None else self.status.value,
            "category": None if self.category is None else self.category.value,
            "queue_id": self.queue_id,
            "tenant": self.tenant or None,
            "limit": self.limit,
            "offset": self.offset,
        }


def like_pattern(text: str) -> str | None:
    """`%text%` with LIKE's wildcards (and the escape character) taken literally; None for no
    text (every chunk matches)."""
    text = text.strip()[:MAX_TEXT_CHARS]
    if not text:
        return None
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def search(backend: Backend, query: ChunkQuery) -> list[Chunk]:
    """One page of the matching chunks, in queue order."""
    return [Chunk.from_row(r) for r in backend.fetch_all("chunks_search", query.params())]


def count(backend: Backend, query: ChunkQuery) -> int:
    row = backend.fetch_one("chunks_search_count", query.params())
    return 0 if row is None else int(row["n"])


def matching_ids(backend: Backend, query: ChunkQuery, most: int) -> list[str]:
    """The ids of every matching chunk (up to `most`), read a page at a time. A chunk that
    leaves the match meanwhile may be missed or seen twice: the ids are deduplicated, and the
    action applied to each checks its state anyway."""
    found: dict[str, None] = {}
    offset = 0
    while len(found) < most:
        page = search(backend, replace(query, limit=BULK_PAGE, offset=offset))
        found.update((c.id, None) for c in page)
        if len(page) < BULK_PAGE:
            break
        offset += BULK_PAGE
    return list(found)[:most]
