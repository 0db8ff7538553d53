"""The domain's vocabulary: queues, chunks, attempts, audit entries and workers.

Every record is a frozen dataclass built from a backend's dict row; every state is an enum whose
values are the strings stored in the database. Times are seconds since the epoch (floats), taken
from the database's clock so that workers on several machines agree.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from operator import itemgetter
from typing import Any

DEFAULT_TENANT = "default"
DEFAULT_PRIORITY = 0
DEFAULT_MAX_ATTEMPTS = 5


class QueueStatus(enum.StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class ChunkStatus(enum.StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    DEAD = "dead"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_CHUNK_STATUSES


TERMINAL_CHUNK_STATUSES = frozenset(
    {ChunkStatus.COMPLETED, ChunkStatus.DEAD, ChunkStatus.CANCELLED}
)


class ErrorCategory(enum.StrEnum):
    """The ten categories every failure is sorted into."""

    TIMEOUT = "timeout"
    RATE_LIMIT = "rate_limit"
    NETWORK = "network"
    TEMPORARY = "temporary"
    AUTH = "auth"
    PERMISSION = "permission"
    NOT_FOUND = "not_found"
    DATA_CONFLICT = "data_conflict"
    PROCESSING_ERROR = "processing_error"
    UNKNOWN = "unknown"


# A column's text to its member by a dict lookup: `ChunkStatus(text)` costs a microsecond, and a
# claim reads hundreds of rows.
_STATUS: dict[str, ChunkStatus] = {s.value: s for s in ChunkStatus}
_CATEGORY: dict[str, ErrorCategory] = {c.value: c for c in ErrorCategory}


class Outcome(enum.StrEnum):
    """What one attempt came to; one row of health metrics per attempt."""

    COMPLETED = "completed"
    RETRIED = "retried"  # failed, will run again after a delay
    DEFERRED = "deferred"  # failed while its dependency was stressed; attempt not spent
    HELD = "held"  # not attempted: its dependency is stressed (the gate held it); not a failure
    DEAD = "dead"  # failed for good
    STUCK = "stuck"  # its worker died or its lease expired; found by recovery
    LOST_LEASE = "lost_lease"  # finished after another owner took the chunk over
    CANCELLED = "cancelled"  # the chunk or its queue was cancelled while it ran


class WorkerStatus(enum.StrEnum):
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"
    LOST = "lost"


# json.loads's own C scanner, called directly: json.loads adds ~0.8 us of Python around it (a
# whitespace regex on each side), as much again as scanning a small payload. Text it does not
# consume whole (whitespace around it, or not JSON) goes to json.loads, which words the error.
_SCAN_JSON: Callable[[str, int], tuple[Any, int]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]


def _json(value: Any) -> Any:
    if type(value) is str:  # the usual case first: a column's JSON text
        try:
            found, end = _SCAN_JSON(value, 0)
        except StopIteration:
            return json.loads(value)
        return found if end == len(value) else json.loads(value)
    if value is None or isinstance(value, dict | list):
        return value
    if isinstance(value, bytes):
        return json.loads(value)
    return value


@dataclass(frozen=True, slots=True)
class Queue:
    id: str
    tenant: str
    name: str
    source: str
    status: QueueStatus
    priority: int
    policy: str
    max_attempts: int
    created_at: float
    updated_at: float
    totals: Mapping[ChunkStatus, int] = field(default_factory=dict)

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Queue:
        totals = {
            status: int(row.get(f"n_{status.value}") or 0)
            for status in ChunkStatus
            if f"n_{status.value}" in row
        }
        return cls(
            id=str(row["id"]),
            tenant=row["tenant"],
            name=row["name"],
            source=row["source"],
            status=QueueStatus(row["status"]),
            priority=int(row["priority"]),
            policy=row["policy"],
            max_attempts=int(row["max_attempts"]),
            created_at=float(row["created_at"]),
            updated_at=float(row["updated_at"]),
            totals=totals,
        )

    @property
    def total(self) -> int:
        return sum(self.totals.values())

    @property
    def done(self) -> int:
        return sum(n for status, n in self.totals.items() if status.terminal)


# Not frozen, like `Attempt`: a claim builds one per chunk, and a frozen __init__ (one
# object.__setattr__ per field, 23 of them) cost ~2.5 us of the ~5 us a claimed row took to load.
# Nothing in chunksync changes a Chunk once loaded; its payload was never hashable anyway.
@dataclass(slots=True)
class Chunk:
    id: str
    queue_id: str
    tenant: str
    seq: int
    payload: Any
    status: ChunkStatus
    priority: int
    attempts: int
    max_attempts: int
    run_after: float
    lease_token: str | None
    lease_expires_at: float | None
    worker_id: str | None
    last_category: ErrorCategory | None
    last_error: str | None
    dead_reason: str | None
    items_processed: int
    checkpoint: Any
    crash_count: int
    stress_retries: int
    deferrals: int
    created_at: float
    updated_at: float

    @classmethod
    def from_table(cls, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[Chunk]:
        """Chunks from rows as tuples with their column names (`Backend.fetch_table`), each
        column's place looked up once for the batch rather than a dict built per row: a claim
        loads hundreds. A column a query leaves out (the lease, the last error, the counters)
        loads as None or 0; the identity, payload, status and times must be there."""
        at = {name: i for i, name in enumerate(columns)}
        missing = [name for name in _CHUNK_FIELDS if name not in at]
        if missing:  # read as the None each row gains at its end
            if required := [name for name in missing if name not in _OPTIONAL_COLUMNS]:
                raise KeyError(required[0])
            rows = [(*r, None) for r in rows]
        (i_id, i_queue, i_tenant, i_seq, i_payload, i_status, i_priority, i_attempts, i_max,
         i_run_after, i_token, i_expires, i_worker, i_category, i_error, i_dead, i_items,
         i_checkpoint, i_crashes, i_stress, i_deferrals, i_created, i_updated,
         ) = (at.get(name, len(columns)) for name in _CHUNK_FIELDS)  # fmt: skip
        chunks = []
        for r in rows:
            category, token, expires = r[i_category], r[i_token], r[i_expires]
            chunks.append(
                cls(
                    str(r[i_id]),
                    str(r[i_queue]),
                    r[i_tenant],
                    int(r[i_seq]),
                    _json(r[i_payload]),
                    _STATUS[r[i_status]],
                    int(r[i_priority]),
                    int(r[i_attempts]),
                    int(r[i_max]),
                    float(r[i_run_after]),
                    None if token is None else str(token),
                    None if expires is None else float(expires),
                    r[i_worker],
                    None if category is None else _CATEGORY[category],
                    r[i_error],
                    r[i_dead],
                    int(r[i_items] or 0),
                    _json(r[i_checkpoint]),
                    int(r[i_crashes] or 0),
                    int(r[i_stress] or 0),
                    int(r[i_deferrals] or 0),
                    float(r[i_created]),
                    float(r[i_updated]),
                )
            )
        return chunks

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Chunk:
        """One chunk from a row as a mapping of its columns (`from_table`'s rules)."""
        return cls.from_table(tuple(row), [tuple(row.values())])[0]


_CHUNK_FIELDS = tuple(f.name for f in fields(Chunk))  # each a column of chunks, in field order
# The columns a query of chunks may leave out (`Chunk.from_table`).
_OPTIONAL_COLUMNS = frozenset(
    ("lease_token", "lease_expires_at", "worker_id", "last_category", "last_error",
     "dead_reason", "items_processed", "checkpoint", "crash_count", "stress_retries",
     "deferrals")
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class ClaimedChunk:
    """A chunk under this worker's lease, with the context the handler and the policy need."""

    chunk: Chunk
    queue: Queue
    lease_token: str
    attempt: int  # 1 for the first attempt
    previous_category: ErrorCategory | None


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    at: float
    action: str
    actor: str
    reason: str
    chunk_id: str | None
    queue_id: str | None
    details: Any

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> AuditEntry:
        return cls(
            id=int(row["id"]),
            at=float(row["at"]),
            action=row["action"],
            actor=row["actor"],
            reason=row["reason"],
            chunk_id=None if row.get("chunk_id") is None else str(row["chunk_id"]),
            queue_id=None if row.get("queue_id") is None else str(row["queue_id"]),
            details=_json(row.get("details")),
        )


@dataclass(slots=True)  # not frozen: one per chunk, and a frozen __init__ costs ~2 us more
class Attempt:
    """One row of attempt health metrics."""

    chunk_id: str
    queue_id: str
    tenant: str
    worker_id: str
    attempt: int
    started_at: float
    finished_at: float
    outcome: Outcome
    category: ErrorCategory | None = None
    rule: str | None = None
    message: str | None = None
    retry_delay_s: float | None = None
    chunk_size: int = 0
    items_processed: int = 0
    items_per_s: float | None = None
    efficiency: float | None = None
    rss_bytes: int | None = None

    @property
    def processing_s(self) -> float:
        return max(0.0, self.finished_at - self.started_at)


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    id: str
    host: str
    pid: int
    status: WorkerStatus
    concurrency: int
    started_at: float
    last_heartbeat_at: float

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> WorkerInfo:
        return cls(
            id=row["id"],
            host=row["host"],
            pid=int(row["pid"]),
            status=WorkerStatus(row["status"]),
            concurrency=int(row["concurrency"]),
            started_at=float(row["started_at"]),
            last_heartbeat_at=float(row["last_heartbeat_at"]),
        )


def claimed_chunks(columns: Sequence[str], rows: list[tuple[Any, ...]]) -> list[Chunk]:
    """A claim's rows as chunks in the claim's order: the highest priority first, then the fair
    order. Two stable sorts by C key functions (a reversed sort keeps equal rows in order): a
    tuple built per row by a lambda cost ~0.2 us a chunk more."""
    if not rows:
        return []
    rows.sort(key=itemgetter(columns.index("fair_key")))
    rows.sort(key=itemgetter(columns.index("priority")), reverse=True)
    return Chunk.from_table(columns, rows)
