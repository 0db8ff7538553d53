"""The operator actions on chunks, queues and dependencies, shared by the pages' forms and the
JSON API.

Chunk and queue actions are audited with the actor "dashboard". Dependency actions go through
`chunksync.deps.operate` like `chunksync deps close|open|set`, so they land in the same audit
log (`chunksync deps log`), with a reason saying they came from the dashboard. An unknown action
is NotFound (404); a bad limit is ConfigurationError (400).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chunksync.app import App
from chunksync.deps import operate, regroup
from chunksync.deps.model import LIMIT_KEYS
from chunksync.deps.store import Dependency
from chunksync.exceptions import ConfigurationError, NotFound
from chunksync.manager import Manager
from chunksync.redact import redact

ACTOR = "dashboard"
CHUNK_ACTIONS = ("retry", "cancel", "release")
QUEUE_ACTIONS = ("pause", "resume", "cancel", "retry")
DEPENDENCY_ACTIONS = ("close", "open", "limits")
MAX_REASON_CHARS = 500


def act(
    app: App,
    kind: str,
    target: str,
    action: str,
    values: Mapping[str, Any] | None = None,
) -> str:
    """Do `action` on the chunk, queue or dependency `target`; return the sentence that tells
    the operator. `values` are a dependency's limits to change (a key given as None clears it)
    and an optional `reason`."""
    reason = f"{action} from the dashboard"
    if kind == "chunk" and action in CHUNK_ACTIONS:
        do = {
            "retry": app.manager.retry_chunk,
            "cancel": app.manager.cancel_chunk,
            "release": app.manager.release_chunk,
        }[action]
        chunk = do(target, ACTOR, reason)
        return f"chunk {chunk.id} is {chunk.status.value}"
    if kind == "queue" and action in QUEUE_ACTIONS:
        return _queue_action(app.manager, target, action, reason)
    if kind == "dependency" and action in DEPENDENCY_ACTIONS:
        return _dependency_action(app, target, action, dict(values or {}))
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


def _dependency_action(app: App, target: str, action: str, values: dict[str, Any]) -> str:
    name = resolve(app, target).name
    reason = _reason(values.pop("reason", None), action)
    shown = redact(name)
    if action == "limits":
        before, after = operate.set_limits(
            app.deps,
            name,
            limit_changes(values),
            reason=reason,
            move_budget_s=regroup.REGROUP_TURN_S,
        )
        was, now = _limits_text(before.as_dict()), _limits_text(after.as_dict())
        return f"dependency {shown}: {was} -> {now}"
    if values:
        raise ConfigurationError(f"{action} takes no limits, only a reason")
    operate.set_flow(app.deps, name, stopped=action == "close", reason=reason)
    if action == "close":
        return f"dependency {shown} is closed: no call goes through until it is opened"
    return f"dependency {shown} is open: calls flow with a full budget"


def resolve(app: App, target: str) -> Dependency:
    """The dependency an operator means: by its name, or by the name as the dashboard shows it
    (redacted), so that a form never needs to carry a secret a name might hold."""
    found = app.deps.all()
    for dep in found:
        if dep.name == target:
            return dep
    shown = [dep for dep in found if redact(dep.name) == target]
    if len(shown) == 1:
        return shown[0]
    known = ", ".join(redact(d.name) for d in found) or "none yet"
    raise NotFound(
        f"no dependency named '{redact(target)}' (known: {known}); {operate.HOW_THEY_COME}"
    )


def limit_changes(values: Mapping[str, Any]) -> dict[str, Any]:
    """The limits to change, checked: `connections` and `burst` whole numbers (or their digits
    as text, as a form sends them), `rate` a text such as '200/s'; None clears one."""
    unknown = sorted(set(values) - set(LIMIT_KEYS))
    if unknown:
        raise ConfigurationError(
            f"unknown limit(s) {', '.join(unknown)}: known are {', '.join(LIMIT_KEYS)} (and reason)"
        )
    if not values:
        raise ConfigurationError(
            "nothing to change: give connections, rate or burst (null or clear removes one)"
        )
    out: dict[str, Any] = {}
    for key, value in values.items():
        if key == "rate" or value is None:
            out[key] = value
        elif isinstance(value, str) and value.strip().isdigit():
            out[key] = int(value.strip())
        elif isinstance(value, int) and not isinstance(value, bool):
            out[key] = value
        else:
            raise ConfigurationError(f"{key} must be a whole number of at least 1, not {value!r}")
    return out


def form_limits(form: Mapping[str, Any], cleared: list[str]) -> dict[str, Any]:
    """A limits form's changes: a filled field sets its limit, a ticked 'clear' box removes it,
    a blank field leaves it as it is."""
    out: dict[str, Any] = {}
    for key in LIMIT_KEYS:
        text = str(form.get(key, "")).strip()
        if key in cleared and text:
            raise ConfigurationError(f"give {key} or clear it, not both")
        if key in cleared:
            out[key] = None
        elif text:
            out[key] = text
    return out


def _reason(given: Any, action: str) -> str:
    if given is None or (isinstance(given, str) and not given.strip()):
        return f"{action} from the dashboard"
    if not isinstance(given, str) or len(given) > MAX_REASON_CHARS:
        raise ConfigurationError(f"reason must be a text of at most {MAX_REASON_CHARS} characters")
    return f"{given.strip()} (from the dashboard)"


def _limits_text(limits: Mapping[str, Any]) -> str:
    return ", ".join(f"{k} {'-' if v is None else v}" for k, v in limits.items())
