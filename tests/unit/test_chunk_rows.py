"""A chunk loads from a mapping (`Chunk.from_row`) as from a table of tuples
(`Chunk.from_table`): one builder, the columns a query may leave out loading as None or 0, and a
row without a chunk's identity refused by the column it lacks."""

from __future__ import annotations

from typing import Any

import pytest

from chunksync.models import Chunk, ChunkStatus, ErrorCategory

FULL: dict[str, Any] = {
    "id": "c1",
    "queue_id": "q1",
    "tenant": "t",
    "seq": 3,
    "payload": '{"uid": 7}',
    "status": "processing",
    "priority": 2,
    "attempts": 1,
    "max_attempts": 5,
    "run_after": 10.5,
    "lease_token": "tok",
    "lease_expires_at": 40,
    "worker_id": "w1",
    "last_category": "network",
    "last_error": "reset",
    "dead_reason": None,
    "items_processed": 4,
    "checkpoint": '{"at": 2}',
    "crash_count": 1,
    "stress_retries": 0,
    "deferrals": 2,
    "created_at": 1,
    "updated_at": 2,
}
LEAN = {k: v for k, v in FULL.items() if k not in ("lease_token", "worker_id", "checkpoint")}
LEAN |= {"last_category": None, "items_processed": None}


def test_a_row_and_a_table_give_the_same_chunk() -> None:
    chunk = Chunk.from_row(FULL)
    [from_table] = Chunk.from_table(tuple(reversed(FULL)), [tuple(reversed(FULL.values()))])
    assert chunk == from_table
    assert chunk.payload == {"uid": 7} and chunk.checkpoint == {"at": 2}
    assert chunk.status is ChunkStatus.PROCESSING and chunk.last_category is ErrorCategory.NETWORK
    assert chunk.lease_expires_at == 40.0 and isinstance(chunk.lease_expires_at, float)


def test_columns_left_out_load_as_none_or_zero() -> None:
    chunk = Chunk.from_row(LEAN)
    assert (chunk.lease_token, chunk.worker_id, chunk.checkpoint) == (None, None, None)
    assert chunk.last_category is None and chunk.items_processed == 0
    assert chunk.lease_expires_at == 40.0 and chunk.deferrals == 2
    [again] = Chunk.from_table(tuple(LEAN), [tuple(LEAN.values())])
    assert again == chunk


@pytest.mark.parametrize("column", ["id", "payload", "status", "created_at"])
def test_a_row_without_a_chunks_identity_is_refused(column: str) -> None:
    row = {k: v for k, v in FULL.items() if k != column}
    with pytest.raises(KeyError, match=column):
        Chunk.from_row(row)
