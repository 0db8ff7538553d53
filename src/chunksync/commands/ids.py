"""Ids as a person types them: the 8-character prefix `status` prints, or any unique prefix.

An exact id or name wins; otherwise the prefix must match exactly one id, and an ambiguous one
lists the matches so the user can type one more character.
"""

from __future__ import annotations

from chunksync.exceptions import NotFound
from chunksync.manager import Manager

SHOWN_MATCHES = 5


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
    matches = manager.chunk_ids_with_prefix(text)
    if not matches:
        try:
            queue = manager.get_queue(text)
        except NotFound:
            queue = None
        if queue is not None:
            raise NotFound(
                f"no chunk with id '{text}': {queue.name} is a queue; did you mean --queue?"
            )
    return _one(matches, text, "chunk", f"no chunk with id '{text}'")


def _one(matches: list[str], text: str, what: str, missing: str) -> str:
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise NotFound(missing)
    shown = ", ".join(sorted(matches)[:SHOWN_MATCHES])
    more = f" and {len(matches) - SHOWN_MATCHES} more" if len(matches) > SHOWN_MATCHES else ""
    raise NotFound(
        f"'{text}' is the start of {len(matches)} {what} ids ({shown}{more}): type more of one"
    )
