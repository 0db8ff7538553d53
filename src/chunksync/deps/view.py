"""How a dependency's row is shown: the stable JSON shape of `chunksync deps --json` (and of the
health command's dependencies) and the short texts of its tables. Read-only and plain data.

Times are the database's clock: `now` comes from it, so a gate's age is right whatever the
clock of the machine that prints it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from rich import box
from rich.table import Table

from chunksync.backends.base import Backend
from chunksync.deps.store import Dependency, dependency_of
from chunksync.redact import redact

FIRST = "dependencies (the gated and the busiest first)"  # a listing cut short names its order
COLUMNS = ("dependency", "flow", "tokens", "slots", "rate", "waits", "probes", "gated")


def listed(backend: Backend) -> list[Dependency]:
    """Every dependency row, by name, with its slots in use and active queues."""
    return [dependency_of(r) for r in backend.fetch_all("deps_list")]


def by_concern(found: list[Dependency]) -> list[Dependency]:
    """The gated first, then those moving chunks, then the busiest (slots in use, then waits),
    then by name: what a listing of a fleet's 5,000 accounts shows in its first rows."""
    return sorted(
        found,
        key=lambda d: (
            not d.state.gated,
            d.regroup_since is None,
            -d.slots_in_use,
            -(d.cap_waits + d.rate_waits + d.gate_waits),
            d.name,
        ),
    )


def iso(ts: float | None) -> str | None:
    """An epoch time as ISO 8601 with its zone (UTC), or None."""
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat()


def duration(seconds: float | None) -> str:
    """A short human duration: 45s, 5m 03s, 2h 05m, 3d 04h; '-' for none."""
    if seconds is None:
        return "-"
    s = max(0, round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    return f"{s // 86400}d {s % 86400 // 3600:02d}h"


def gated_for(dep: Dependency, now: float) -> float | None:
    """How long the dependency has been gated (probing or stopped), or None while it flows."""
    since = dep.state.gated_since
    return None if not dep.state.gated or since is None else max(0.0, now - since)


def budget(dep: Dependency) -> tuple[float, float]:
    """The retry budget's tokens and capacity (a full budget is stored as NULL)."""
    tokens = dep.state.tokens
    return tokens, tokens if dep.capacity is None else dep.capacity


def shown(dep: Dependency, now: float) -> dict[str, Any]:
    """The documented JSON shape of one dependency (docs/dependencies.md)."""
    tokens, capacity = budget(dep)
    limits = dep.limits
    return {
        "name": redact(dep.name),
        "flow": dep.state.flow.value,
        "tokens": tokens,
        "capacity": capacity,
        "slots_in_use": dep.slots_in_use,
        "connections": limits.connections,
        "rate": None if limits.rate is None else str(limits.rate),
        "rate_per_s": None if limits.rate is None else limits.rate.per_s,
        "burst": limits.burst,
        "waits": {
            "connections": dep.cap_waits,
            "rate": dep.rate_waits,
            "gate": dep.gate_waits,
        },
        "probes": dep.probes,
        "active_queues": dep.active_queues,
        "gated_since": iso(dep.state.gated_since if dep.state.gated else None),
        "gated_for_s": gated_for(dep, now),
        "next_probe_at": iso(dep.state.next_probe_at),
        "chunks_moving_since": iso(dep.regroup_since),
    }


def row(dep: Dependency, now: float) -> list[str]:
    """One line of the dependencies table, in COLUMNS order."""
    tokens, capacity = budget(dep)
    limits = dep.limits
    cap = "-" if limits.connections is None else str(limits.connections)
    rate = "-" if limits.rate is None else str(limits.rate)
    if limits.burst is not None:
        rate += f" burst {limits.burst}"
    moving = "" if dep.regroup_since is None else ", moving"
    return [
        redact(dep.name),
        dep.state.flow.value + moving,
        f"{tokens:g}/{capacity:g}",
        f"{dep.slots_in_use}/{cap}",
        rate,
        f"{dep.cap_waits}/{dep.rate_waits}/{dep.gate_waits}",
        str(dep.probes),
        duration(gated_for(dep, now)),
    ]


def table(found: list[Dependency], now: float) -> Table:
    """The dependencies table (`chunksync deps` and `chunksync health`): a long name folds onto
    more lines rather than being cut, and the other columns are never wrapped."""
    out = Table(
        title="dependencies (waits: connections/rate/gate)",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )
    out.add_column(COLUMNS[0], overflow="fold", ratio=1)
    for column in COLUMNS[1:]:
        out.add_column(column, no_wrap=True)
    for dep in found:
        out.add_row(*row(dep, now))
    return out
