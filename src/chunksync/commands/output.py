"""The shapes the CLI prints: `--json` documents (docs/cli.md) and the few words shared by the
tables (a pending chunk's next run, a rate).

JSON is the stable interface: keys are only ever added, timestamps are ISO 8601 strings in UTC
with their zone (`2026-12-02T14:05:00.123456+00:00`), durations are seconds as numbers.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from chunksync.deps.view import iso
from chunksync.durations import format_duration
from chunksync.models import Chunk, ChunkStatus, Queue


def row_json(row: Mapping[str, Any]) -> dict[str, Any]:
    """A database row for --json: its `*_at` times (epoch seconds, or a driver's datetime) as
    ISO 8601 with the zone, the rest as is."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        if key.endswith("_at") and isinstance(value, int | float) and not isinstance(value, bool):
            value = iso(float(value))
        elif isinstance(value, datetime):
            value = (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()
        out[key] = value
    return out


def queue_json(q: Queue) -> dict[str, Any]:
    return {
        "id": q.id,
        "name": q.name,
        "tenant": q.tenant,
        "status": q.status.value,
        "source": q.source,
        "priority": q.priority,
        "policy": q.policy,
        "totals": {s.value: n for s, n in q.totals.items()},
        "created_at": iso(q.created_at),
        "updated_at": iso(q.updated_at),
    }


def chunk_json(c: Chunk) -> dict[str, Any]:
    return {
        "id": c.id,
        "queue_id": c.queue_id,
        "tenant": c.tenant,
        "seq": c.seq,
        "status": c.status.value,
        "priority": c.priority,
        "attempts": c.attempts,
        "max_attempts": c.max_attempts,
        "deferrals": c.deferrals,
        "last_category": c.last_category,
        "dead_reason": c.dead_reason,
        "last_error": c.last_error,
        "worker_id": c.worker_id,
        "next_run_at": iso(c.run_after) if c.status is ChunkStatus.PENDING else None,
        "created_at": iso(c.created_at),
        "updated_at": iso(c.updated_at),
    }


def next_run_text(c: Chunk, now: float) -> str:
    """'now', 'in 4m 10s', or '' for a chunk that is not pending."""
    if c.status is not ChunkStatus.PENDING:
        return ""
    wait = c.run_after - now
    return "now" if wait <= 0 else f"in {span(wait)}"


def span(seconds: float) -> str:
    """A wait for a person: '45s', '4m 10s', '2h 5m', '3d 4h'."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s}s"
    units = [("d", 86400), ("h", 3600), ("m", 60), ("s", 1)]
    parts = []
    for name, size in units:
        if s >= size:
            parts.append(f"{s // size}{name}")
            s %= size
        if len(parts) == 2:
            break
    return " ".join(parts)


def rate(value: float | None) -> str:
    """A rate such as items/s: three significant figures below 100, whole numbers with
    thousands separators above (73,627 rather than 73626.859)."""
    if value is None:
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


__all__ = [
    "chunk_json",
    "format_duration",
    "iso",
    "next_run_text",
    "queue_json",
    "rate",
    "row_json",
    "span",
]
