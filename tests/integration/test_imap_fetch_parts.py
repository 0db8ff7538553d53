"""A fetch chunk is one UID FETCH, written in parts as its bodies arrive (MAX_PART_BYTES), each
part checkpointed with the UIDs left; a retry fetches only those, whether the checkpoint was
written by this release (`left`) or by 0.1 (`done_through`). Against a real Dovecot."""

from __future__ import annotations

from typing import Any

import pytest

from chunksync.app import App
from chunksync.context import ChunkContext
from chunksync.exceptions import BackendUnavailable
from chunksync.models import ChunkStatus
from chunksync.sources.imap import source as imap_source
from chunksync.sources.mail import mail_source, plan_sync
from chunksync.store import MessageStore
from tests.integration.mail_helpers import run_sync, stored
from tests.integration.test_imap_sync import assert_mirrors_server, fill
from tests.servers.dovecot import Mailbox

pytestmark = pytest.mark.imap


def parts_of(sizes: list[int], part_bytes: int) -> list[int]:
    """How many messages each part holds when bodies of these sizes arrive in order."""
    parts, held, count = [], 0, 0
    for size in sizes:
        held, count = held + size, count + 1
        if held >= part_bytes:
            parts.append(count)
            held, count = 0, 0
    return parts + ([count] if count else [])


def test_a_chunk_is_written_in_parts_each_checkpointed_with_what_is_left(
    sqlite_app: App, mailbox: Mailbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    raws = fill(mailbox, 30)
    part_bytes = sum(len(r) for r in raws[:4])
    monkeypatch.setattr(imap_source, "MAX_PART_BYTES", part_bytes)
    saved: list[tuple[Any, int]] = []
    save = ChunkContext.save_checkpoint

    def recording(ctx: ChunkContext, checkpoint: Any, items_processed: int | None = None) -> None:
        saved.append((checkpoint, items_processed or 0))
        save(ctx, checkpoint, items_processed)

    monkeypatch.setattr(ChunkContext, "save_checkpoint", recording)
    planned = run_sync(sqlite_app, mailbox.uri(), chunk_size=30, concurrency=1)
    assert sorted(stored(sqlite_app).values()) == sorted(raws)
    assert_mirrors_server(sqlite_app, mailbox)
    # Every part but the last is checkpointed (the last is written with the chunk's result),
    # saying what is left: the UIDs after the ones stored so far.
    parts = parts_of([len(r) for r in raws], part_bytes)
    assert len(parts) >= 5 and parts[-1] < 4  # parts of 3 or 4, the last one shorter
    through = [sum(parts[: n + 1]) for n in range(len(parts) - 1)]
    assert [c for c, _ in saved] == [{"left": f"{n + 1}:30"} for n in through]
    assert [n for _, n in saved] == through
    chunk = sqlite_app.manager.list_chunks(planned[0].queue_id, limit=10)[0]
    assert chunk.status is ChunkStatus.COMPLETED and chunk.items_processed == 30


def test_a_part_that_cannot_be_written_fails_the_chunk_and_its_retry_resumes(
    sqlite_app: App, mailbox: Mailbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A part's write fails mid-FETCH (the server still sending): the connection is dropped,
    not reused mid-response, and the retry fetches only what the last checkpoint left."""
    raws = fill(mailbox, 30)
    part_bytes = sum(len(r) for r in raws[:3])
    monkeypatch.setattr(imap_source, "MAX_PART_BYTES", part_bytes)
    parts = parts_of([len(r) for r in raws], part_bytes)
    assert parts[:4] == [3, 3, 3, 3]
    put_rows, calls, fetched = MessageStore.put_rows, [0], list[int]()

    def failing_once(store: MessageStore, session: Any, rows: Any) -> None:
        calls[0] += 1
        fetched.extend(int(r["uid"]) for r in rows)
        if calls[0] == 4:
            raise BackendUnavailable("the store went away for a moment")
        put_rows(store, session, rows)

    monkeypatch.setattr(MessageStore, "put_rows", failing_once)
    planned = run_sync(sqlite_app, mailbox.uri(), chunk_size=30, concurrency=1)
    assert sorted(stored(sqlite_app).values()) == sorted(raws)
    assert_mirrors_server(sqlite_app, mailbox)
    # Three parts were written before the failure (UIDs 1-9); the retry began at UID 10.
    assert fetched[:9] == list(range(1, 10)) and fetched[9:12] == [10, 11, 12]
    assert fetched[12:] == list(range(10, 31))
    chunk = sqlite_app.manager.list_chunks(planned[0].queue_id, limit=10)[0]
    assert chunk.status is ChunkStatus.COMPLETED and chunk.attempts == 2
    assert chunk.items_processed == 30


@pytest.mark.parametrize(
    "checkpoint", [{"left": "4:6"}, {"done_through": 3}], ids=["left", "done_through-of-0.1"]
)
def test_a_resumed_chunk_fetches_only_what_its_checkpoint_left(
    sqlite_app: App, mailbox: Mailbox, checkpoint: dict[str, Any]
) -> None:
    fill(mailbox, 6)
    uri = mailbox.uri()
    planned = plan_sync(sqlite_app, mail_source(sqlite_app, uri), [uri], chunk_size=10)
    manager = sqlite_app.manager
    # An earlier attempt stored 1-3 and checkpointed, then its worker stopped (given back).
    token, (chunk,) = manager.claim("earlier", ["imap"], limit=1)
    assert manager.heartbeat_chunk(chunk.id, token, 30.0, checkpoint=checkpoint, items=3)
    assert manager.release(chunk, token, refund=True)
    queue_id, key = planned[0].queue_id, planned[0].key
    assert queue_id is not None and key is not None
    worker = sqlite_app.worker(concurrency=1, poll_s=0.02, time_scale=0.01)
    worker.run_until_done([queue_id], timeout_s=60)
    assert sorted(uid for _, uid in stored(sqlite_app)) == [4, 5, 6]  # 1-3 not fetched again
    assert MessageStore(sqlite_app.backend).count(key)[0] == 3
    done = manager.get_chunk(chunk.id)
    assert done.status is ChunkStatus.COMPLETED and done.items_processed == 6
