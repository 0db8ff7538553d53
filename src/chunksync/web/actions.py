"""The operator actions on chunks and queues, shared by the pages' forms and the JSON API.

Every action is audited with the actor "dashboard". An unknown action is NotFound (404).
"""

from __future__ import annotations

from chunksync.exceptions import NotFound
from chunksync.manager import Manager

ACTOR = "dashboard"
CHUNK_ACTIONS = ("retry", "cancel", "release")
QUEUE_ACTIONS = ("pause", "resume", "cancel", "retry")


def act(manager: Manager, kind: str, target: str, action: str) -> str:
    """Do `action` on the chunk or queue `target`; return the sentence that tells the operator."""
    reason = f"{action} from the dashboard"
    if kind == "chunk" and action in CHUNK_ACTIONS:
        do = {
            "retry": manager.retry_chunk,
            "cancel": manager.cancel_chunk,
            "release": manager.release_chunk,
        }[action]
        chunk = do(target, ACTOR, reason)
        return f"chunk {chunk.id} is {chunk.status.value}"
    if kind == "queue" and action in QUEUE_ACTIONS:
        return _queue_action(manager, target, action, reason)
    raise NotFound(f"no action '{action}' on a {kind}")


def _queue_action(manager: Manager, target: str, action: str, reason: str) -> str:
    queue = manager.get_queue(target)
    if action == "pause":
        return f"queue {manager.pause_queue(queue.id, ACTOR, reason).name} is paused"
    if action == "resume":
        return f"queue {manager.resume_queue(queue.id, ACTOR, reason).name} is resumed"
    if action == "cancel":
        return f"queue {queue.name} cancelled ({manager.cancel_queue(queue.id, ACTOR, reason)})"
    return f"{manager.retry_queue(queue.id, ACTOR, reason)} dead chunk(s) will run again"
