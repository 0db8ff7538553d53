"""Bulk actions: retry, cancel or release the chunks an operator selected, or every chunk that
matches the list's filters, after a confirmation.

Each chunk goes through the same intervention as a single action (chunksync.interventions), so
each gets its own audit entry (actor "dashboard"), and a chunk whose state does not allow the
action (a completed chunk asked to retry) is skipped and counted, not an error. "Everything
matching" is the very search the list counted (chunksync.search), at most MAX_BULK_CHUNKS.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from chunksync import search
from chunksync.app import App
from chunksync.exceptions import ConfigurationError, NotFound, StateError
from chunksync.web.actions import ACTOR, CHUNK_ACTIONS

MAX_BULK_CHUNKS = 10_000
MAX_SELECTED = 1000


@dataclass(slots=True)
class BulkResult:
    action: str
    matched: int
    done: int = 0
    skipped: Counter[str] = field(default_factory=Counter)

    def message(self) -> str:
        text = f"{self.action}: {self.done} of {self.matched} chunk(s) done"
        if self.skipped:
            why = "; ".join(f"{n} {reason}" for reason, n in self.skipped.most_common(3))
            text += f", {sum(self.skipped.values())} skipped ({why})"
        return text

    def as_dict(self, *, confirmed: bool) -> dict[str, Any]:
        return {
            "ok": True,
            "confirmed": confirmed,
            "action": self.action,
            "matched": self.matched,
            "done": self.done,
            "skipped": sum(self.skipped.values()),
            "message": self.message() if confirmed else self.preview(),
        }

    def preview(self) -> str:
        return f"{self.action} would apply to {self.matched} chunk(s): confirm to go ahead"


def check_action(action: str) -> str:
    if action not in CHUNK_ACTIONS:
        raise NotFound(f"no bulk action '{action}': known are {', '.join(CHUNK_ACTIONS)}")
    return action


def targets(app: App, ids: Sequence[str] | None, query: search.ChunkQuery | None) -> list[str]:
    """The chunks a bulk action applies to: the ids selected, or every match of `query`."""
    if ids:
        if len(ids) > MAX_SELECTED:
            raise ConfigurationError(f"select at most {MAX_SELECTED} chunks at once")
        return list(dict.fromkeys(str(i) for i in ids))
    if query is None:
        raise ConfigurationError("select chunks, or act on everything matching the filters")
    return search.matching_ids(app.backend, query, MAX_BULK_CHUNKS)


def apply(app: App, action: str, chunk_ids: Sequence[str], reason: str = "") -> BulkResult:
    """Do `action` on each chunk, each audited on its own; what its state refuses is skipped."""
    do = {
        "retry": app.manager.retry_chunk,
        "cancel": app.manager.cancel_chunk,
        "release": app.manager.release_chunk,
    }[check_action(action)]
    result = BulkResult(action, len(chunk_ids))
    why = reason or f"bulk {action} from the dashboard"
    for chunk_id in chunk_ids:
        try:
            do(chunk_id, ACTOR, why)
            result.done += 1
        except StateError:
            result.skipped["not in a state that allows it"] += 1
        except NotFound:
            result.skipped["gone"] += 1
    return result
