"""The operator's interventions from the command line: retry, cancel, pause, resume, release,
recover. Each takes the ids `status` and `chunks` print, or any unique prefix of one
(chunksync.commands.ids), and refuses in one sentence what the state does not allow."""

from __future__ import annotations

from functools import partial
from typing import Annotated

import typer

from chunksync.backends.base import Backend
from chunksync.cli import cli, console, duration, friendly, open_app, print_json, say, spoken_move
from chunksync.commands import output
from chunksync.commands.ids import chunk_id, queue_id
from chunksync.deps import regroup
from chunksync.interventions import WORKER_TIMEOUT_SECONDS
from chunksync.models import Queue, QueueStatus

JsonFlag = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


@cli.command()
@friendly
def retry(
    target: Annotated[str, typer.Argument(help="A dead chunk's id, or a queue (with --queue).")],
    queue: Annotated[
        bool, typer.Option("--queue", help="Retry every dead chunk of this queue.")
    ] = False,
    reason: Annotated[str, typer.Option(help="Why, for the audit log.")] = "manual retry",
    as_json: JsonFlag = False,
) -> None:
    """Retry a dead chunk, or every dead chunk of a queue."""
    with open_app(create=False) as app:
        if queue:
            n = app.manager.retry_queue(queue_id(app.manager, target), reason=reason)
            said, data = f"{n} dead chunk(s) will run again", {"retried": n}
        else:
            chunk = app.manager.retry_chunk(chunk_id(app.manager, target), reason=reason)
            said, data = f"chunk {chunk.id} is {chunk.status} again", output.chunk_json(chunk)
    _say(said, data, as_json)


@cli.command()
@friendly
def cancel(
    target: Annotated[str, typer.Argument(help="A chunk id, or a queue (with --queue).")],
    queue: Annotated[bool, typer.Option("--queue", help="Cancel the whole queue.")] = False,
    reason: Annotated[str, typer.Option(help="Why, for the audit log.")] = "manual cancel",
    as_json: JsonFlag = False,
) -> None:
    """Cancel a chunk or a whole queue."""
    with open_app(create=False) as app:
        if queue:
            n = app.manager.cancel_queue(queue_id(app.manager, target), reason=reason)
            said, data = f"queue cancelled with {n} unfinished chunk(s)", {"cancelled": n}
        else:
            chunk = app.manager.cancel_chunk(chunk_id(app.manager, target), reason=reason)
            said, data = f"chunk {chunk.id} cancelled", output.chunk_json(chunk)
    _say(said, data, as_json)


@cli.command()
@friendly
def pause(
    queue: Annotated[str, typer.Argument(help="Queue id, name or id prefix.")],
    reason: str = "manual pause",
    as_json: JsonFlag = False,
) -> None:
    """Pause a queue: no new chunk of it is claimed. Pausing a paused queue says so."""
    _move(queue, QueueStatus.PAUSED, reason, as_json)


@cli.command()
@friendly
def resume(
    queue: Annotated[str, typer.Argument(help="Queue id, name or id prefix.")],
    reason: str = "manual resume",
    as_json: JsonFlag = False,
) -> None:
    """Resume a paused queue. Resuming an active queue says so."""
    _move(queue, QueueStatus.ACTIVE, reason, as_json)


def _move(target: str, to: QueueStatus, reason: str, as_json: bool) -> None:
    """Pause or resume; a queue already there is not a mistake (exit 0, and no audit entry,
    since nothing changed). On PostgreSQL its open chunks then all move to the claim group
    the new status calls for before the command returns (chunksync.deps.regroup.move_queue)."""
    with open_app(create=False) as app:
        q = app.manager.get_queue(queue_id(app.manager, target))
        if q.status is to:
            _say(f"queue {q.name} is already {to}", output.queue_json(q), as_json)
            return
        if to is QueueStatus.PAUSED:
            q = app.manager.pause_queue(q.id, reason=reason, move_s=0)
        else:
            q = app.manager.resume_queue(q.id, reason=reason, move_s=0)
        if not as_json:
            say(f"queue {q.name} is {q.status}")
        if app.backend.claim_groups:
            _move_chunks(app.backend, q, quiet=as_json)
    if as_json:
        print_json(output.queue_json(q))


def _move_chunks(backend: Backend, queue: Queue, *, quiet: bool) -> None:
    """A paused queue's chunks to its paused claim group, which no claim reads past, or a
    resumed one's back (100,000 chunks take about 2 s). Ctrl-C stops the move, not the pause
    or the resume: a worker's maintenance leader goes on within 10 s."""
    paused = queue.status is QueueStatus.PAUSED
    where = (
        "to the paused claim group, which no claim reads past"
        if paused
        else "back to the claim group claims read, each claimable as it moves"
    )
    left = (
        f"the queue stays {queue.status}, and a worker's maintenance leader moves the rest of "
        "its chunks within 10 s" + ("" if paused else "; until then the chunks not yet moved wait")
    )
    move = partial(regroup.move_queue, backend, queue.id)
    spoken_move(f"moving its open chunks {where}", move, lambda: left, quiet=quiet)


@cli.command()
@friendly
def release(
    target: Annotated[
        str, typer.Argument(help="A processing chunk's id, or a worker id (with --worker).")
    ],
    worker: Annotated[
        bool, typer.Option("--worker", help="Requeue everything a dead worker holds.")
    ] = False,
    force: Annotated[
        bool, typer.Option(help="Even if its worker still heartbeats (the chunk may run twice).")
    ] = False,
    reason: Annotated[str, typer.Option(help="Why, for the audit log.")] = "manual release",
    as_json: JsonFlag = False,
) -> None:
    """Force a stuck chunk back to pending, or requeue a dead worker's chunks."""
    with open_app(create=False) as app:
        if worker:
            n = app.manager.requeue_worker(target, reason=reason, force=force)
            said, data = f"{n} chunk(s) of worker {target} back to pending", {"released": n}
        else:
            chunk = app.manager.release_chunk(
                chunk_id(app.manager, target), reason=reason, force=force
            )
            said, data = f"chunk {chunk.id} released", output.chunk_json(chunk)
    _say(said, data, as_json)


@cli.command()
@friendly
def recover(
    worker_timeout: Annotated[
        float,
        typer.Option(help="Silence after which a worker is lost (60s, 2m...).", parser=duration()),
    ] = WORKER_TIMEOUT_SECONDS,
    as_json: JsonFlag = False,
) -> None:
    """Recover stuck chunks now (workers do this on their own before each claim)."""
    with open_app(create=False) as app:
        found = app.manager.recover_stuck(
            "operator",
            lambda qid: app.policy(app.manager.get_queue(qid).policy),
            worker_timeout_s=worker_timeout,
        )
    if as_json:
        print_json(
            [
                {
                    "chunk_id": r.chunk_id,
                    "reason": r.reason,
                    "to_status": str(r.to_status),
                    "previous_worker": r.previous_worker,
                }
                for r in found
            ]
        )
        return
    for r in found:
        console.print(
            f"chunk {r.chunk_id}: {r.reason} -> {r.to_status} (worker {r.previous_worker})",
            markup=False,
        )
    console.print(f"{len(found)} chunk(s) recovered")


def _say(sentence: str, data: object, as_json: bool) -> None:
    if as_json:
        print_json(data)
    else:
        console.print(sentence, markup=False, highlight=False)
