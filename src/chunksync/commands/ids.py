"""Ids as a person types them: the 8-character prefix `status` prints, or any unique prefix.

An exact id or name wins; otherwise the prefix must match exactly one id, and an ambiguous one
lists the matches so the user can type one more character. A chunk's id starts with the time
it was made (chunksync.ids), so the chunks of one enqueue share a long prefix: a short one
matches many, found by a range over the primary key and counted up to CHUNK_MATCHES.
"""

from __future__ import annotations

from chunksync.exceptions import NotFound
from chunksync.manager import Manager

SHOWN_MATCHES = 5
CHUNK_MATCHES = 20  # a chunk prefix's matches read, at most


def queue_id(manager: Manager, text: str) -> str:
    """The id of the queue whose id or name is `text`, or whose id starts with it."""
    try:
        return manager.get_queue(text).id
    except NotFound:
        pass
    matches = [q.id for q in manager.list_queues() if q.id.startswith(text)]
    return _one(matches, text, "queue", f"no queue with id or name '{text}'")


def chunk_id(manager: Manager, text: str) -> str:
    """The id of the chunk whose id is `text` or starts with it. A queue's name or id given
    where a chunk was expected gets a hint to add --queue."""
    try:
        return manager.get_chunk(text).id
    except NotFound:
        pass
    matches = manager.chunk_ids_with_prefix(text, limit=CHUNK_MATCHES + 1)
    if not matches:
        try:
            queue = manager.get_queue(text)
        except NotFound:
            queue = None
        if queue is not None:
            raise NotFound(
                f"no chunk with id '{text}': {queue.name} is a queue; did you mean --queue?"
            )
    return _one(matches, text, "chunk", f"no chunk with id '{text}'", cap=CHUNK_MATCHES)


def _one(matches: list[str], text: str, what: str, missing: str, *, cap: int | None = None) -> str:
    """The one match; else one sentence: none, or how many (more than `cap` when the matches
    were read up to cap + 1) with the first few."""
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise NotFound(missing)
    capped = cap is not None and len(matches) > cap
    count = f"more than {cap}" if capped else str(len(matches))
    shown = ", ".join(sorted(matches)[:SHOWN_MATCHES])
    rest = len(matches) - SHOWN_MATCHES
    more = " and more" if capped else (f" and {rest} more" if rest > 0 else "")
    raise NotFound(f"'{text}' is the start of {count} {what} ids ({shown}{more}): type more of one")
