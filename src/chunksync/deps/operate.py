"""What an operator and a program set on the dependency rows: declarations, limits and flow.

- A declaration (`App.dependency`, a `[dependencies."NAME"]` TOML table) is applied when a
  dependency's row is first created (`declare_new`); a row that exists keeps its limits, so an
  operator's `chunksync deps set` is never undone by a program that starts again.
- An operator's change (`set_limits`, `set_flow`) is audited: an `audit_log` row with actor
  `operator`, the reason, and the limits and flow before and after.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chunksync.backends.base import Backend, Row, Session, in_transaction
from chunksync.deps import regroup
from chunksync.deps.model import LIMIT_KEYS, Limits, dependencies_from, merge
from chunksync.deps.store import Dependency, DependencyStore, limits_of
from chunksync.exceptions import ConfigurationError, NotFound
from chunksync.manager import dump_json
from chunksync.retry import StressConfig
from chunksync.tomlfile import read_toml

ACTOR = "operator"
ACTIONS = ("deps_set", "deps_open", "deps_close")
HOW_THEY_COME = (
    "a dependency's row is made when a queue leans on it or when it is declared "
    "(App.dependency() or a dependencies table of a TOML file)"
)


def is_pattern(name: str) -> bool:
    """Whether a declared name is a pattern (`imap://*@imap.gmail.com`) rather than one name."""
    return any(ch in name for ch in "*?[")


def declare_new(backend: Backend, name: str, limits: Limits) -> bool:
    """Make dependency `name`'s row with these limits unless it exists: True when made."""
    return bool(backend.execute("deps_declare_new", limit_params(name, limits)))


def load_dependencies(path: str | Path) -> dict[str, Limits]:
    """The `[dependencies."NAME"]` tables of a TOML file (a policy file may hold them too)."""
    return dependencies_from(read_toml(path, "dependencies file"), str(path))


def unknown(store: DependencyStore, name: str) -> NotFound:
    """The one sentence for a name that has no row: the known ones and how a row comes."""
    known = ", ".join(d.name for d in store.all()) or "none yet"
    return NotFound(f"no dependency named '{name}' (known: {known}); {HOW_THEY_COME}")


def find(store: DependencyStore, name: str) -> Dependency:
    for dep in store.all():
        if dep.name == name:
            return dep
    raise unknown(store, name)


@dataclass(frozen=True)
class LimitChange:
    """A change of a dependency's limits, committed: the limits before and after, and whether
    its open chunks are to move to another claim group (`regroup.move` moves them)."""

    before: Limits
    after: Limits
    moving: bool


def change_limits(
    store: DependencyStore, name: str, values: Mapping[str, Any], *, reason: str
) -> LimitChange:
    """Change the limits given in `values` (a key given as None is cleared) while workers run,
    and audit it in the same transaction. The chunks it moves to another claim group are left
    to the caller (`set_limits`, or a command that says how the move goes)."""
    if not set(values) & set(LIMIT_KEYS):
        raise ConfigurationError(
            "nothing to change: give --connections, --rate or --burst, or a --clear-... option"
        )

    def work(s: Session) -> LimitChange:
        row = s.fetch_one("deps_lock", {"name": name})
        if row is None:
            raise unknown(store, name)
        before = limits_of(row)
        after = merge(before, values, f"'{name}'")
        s.execute("deps_set_limits", limit_params(name, after))
        marked = store.regroup(s, name, before, after)
        details = {"dependency": name, "before": before.as_dict(), "after": after.as_dict()}
        audit(s, "deps_set", reason, details)
        return LimitChange(before, after, marked)

    return in_transaction(store.backend, work)


def set_limits(
    store: DependencyStore,
    name: str,
    values: Mapping[str, Any],
    *,
    reason: str,
    move_budget_s: float | None = None,
) -> tuple[Limits, Limits]:
    """`change_limits`, then, where the change calls for another claim group, move the
    dependency's chunks to it, in batches (`regroup.move`): all of them, or for
    `move_budget_s` (a web request), the maintenance leader moving the rest. Returns the
    limits before and after."""
    change = change_limits(store, name, values, reason=reason)
    if change.moving:
        regroup.move(store.backend, name, budget_s=move_budget_s)
    return change.before, change.after


def set_flow(store: DependencyStore, name: str, *, stopped: bool, reason: str) -> Dependency:
    """Close a dependency (flow `stopped`: nothing is claimed) or open it (calls flow with a
    full budget), then audit it. The store changes the flow in its own transaction; the audit
    row follows at once."""
    before = find(store, name)
    config = StressConfig(capacity=before.capacity) if before.capacity else StressConfig()
    store.set_flow(name, stopped, config)
    after = find(store, name)
    details = {"dependency": name, "before": flow_of(before), "after": flow_of(after)}
    with store.backend.transaction() as s:
        audit(s, "deps_close" if stopped else "deps_open", reason, details)
    return after


def history(backend: Backend, name: str | None = None, limit: int = 50) -> list[Row]:
    """The operators' changes of one dependency (or of all), newest first."""
    return backend.fetch_all("deps_audit", {"name": name, "limit": limit})


def flow_of(dep: Dependency) -> dict[str, Any]:
    return {"flow": dep.state.flow.value, **dep.limits.as_dict()}


def audit(s: Session, action: str, reason: str, details: Mapping[str, Any]) -> None:
    s.execute(
        "insert_audit",
        {
            "action": action,
            "actor": ACTOR,
            "reason": reason,
            "chunk_id": None,
            "queue_id": None,
            "details": dump_json(dict(details), "detail"),
        },
    )


def limit_params(name: str, limits: Limits) -> dict[str, Any]:
    return {
        "name": name,
        "connections": limits.connections,
        "rate_units": None if limits.rate is None else limits.rate.units,
        "rate_period_s": None if limits.rate is None else limits.rate.period_s,
        "burst": limits.burst,
    }
