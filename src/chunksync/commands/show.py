"""`chunksync show CHUNK`: everything about one chunk, and for a pending one, when it runs next
and why it waits (backoff, deferral, the dependency's gate or limits, a paused queue)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.markup import escape

from chunksync.app import App
from chunksync.cli import cli, console, friendly, open_app, print_json
from chunksync.commands import output
from chunksync.commands.ids import chunk_id
from chunksync.models import Chunk, ChunkStatus, QueueStatus
from chunksync.redact import redact

AUDIT_SHOWN = 20
WAIT_BY_OUTCOME = {
    "retried": "backoff after a {category} failure",
    "deferred": "deferred: its dependency was stressed when it failed (the attempt was not spent)",
    "held": "held by its dependency's gate, without a call",
    "stuck": "recovered from a worker that died or lost its lease",
    "lost_lease": "recovered from a worker that lost its lease",
}


@cli.command()
@friendly
def show(
    chunk: Annotated[str, typer.Argument(help="A chunk id, or a unique prefix of one.")],
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """One chunk: payload, attempts, checkpoint, audit, and when and why it runs next."""
    with open_app(create=False) as app:
        found = app.manager.get_chunk(chunk_id(app.manager, chunk))
        data = describe(app, found)
    if as_json:
        print_json(data)
        return
    _print(found, data)


def describe(app: App, chunk: Chunk) -> dict[str, Any]:
    """The documented JSON shape of `chunksync show --json` (docs/cli.md)."""
    now = app.manager.now()
    attempts = [output.row_json(a) for a in app.manager.list_attempts(chunk.id)]
    audit = app.manager.list_audit(chunk_id=chunk.id, limit=AUDIT_SHOWN)
    return {
        **output.chunk_json(chunk),
        "payload": redacted(chunk.payload),
        "checkpoint": redacted(chunk.checkpoint),
        "items_processed": chunk.items_processed,
        "waits_for": waits_for(app, chunk, attempts, now),
        "attempt_log": attempts,
        "audit": [
            {
                "at": output.iso(e.at),
                "action": e.action,
                "actor": e.actor,
                "reason": e.reason,
                "details": e.details,
            }
            for e in audit
        ],
    }


def redacted(value: Any) -> Any:
    """A JSON value with its secrets masked as redact() masks them in text: unchanged when it
    holds none, else parsed back (or, should masking have broken the JSON, the masked text)."""
    text = json.dumps(value)
    masked = redact(text)
    if masked == text:
        return value
    try:
        return json.loads(masked)
    except ValueError:
        return masked


def waits_for(app: App, chunk: Chunk, attempts: list[dict[str, Any]], now: float) -> str | None:
    """Why a pending chunk has not run yet, in a sentence; None for any other status."""
    if chunk.status is not ChunkStatus.PENDING:
        return None
    queue = app.manager.get_queue(chunk.queue_id)
    if queue.status is QueueStatus.PAUSED:
        return f"its queue {queue.name} is paused"
    if chunk.run_after > now:
        last = attempts[-1] if attempts else None
        template = WAIT_BY_OUTCOME.get(str(last["outcome"])) if last else None
        why = (template or "a delay").format(category=(last or {}).get("category") or "")
        return f"{why}, until {output.iso(chunk.run_after)}"
    return _dependency_wait(app, chunk) or "nothing: it runs when a worker has a free slot"


def _dependency_wait(app: App, chunk: Chunk) -> str | None:
    row = app.backend.fetch_one("get_queue", {"id": chunk.queue_id, "tenant": chunk.tenant})
    name = row.get("dependency") if row else None
    if not name:
        return None
    dep = next((d for d in app.deps.all() if d.name == name), None)
    if dep is None:
        return None
    if dep.state.gated:
        probe = output.iso(dep.state.next_probe_at)
        return f"the gate of its dependency {name} ({dep.state.flow.value}; next probe {probe})"
    cap = dep.limits.connections
    if cap is not None and dep.slots_in_use >= cap:
        return f"a free connection of its dependency {name} ({dep.slots_in_use}/{cap} in use)"
    if dep.limits.rate is not None:
        return f"the rate limit of its dependency {name} ({dep.limits.rate}), if it is spent"
    return None


def _print(chunk: Chunk, data: dict[str, Any]) -> None:
    say = console.print
    say(f"[bold]chunk {chunk.id}[/] (queue {chunk.queue_id[:8]}, seq {chunk.seq})")
    say(f"status      {chunk.status.value}; attempts {chunk.attempts} of {chunk.max_attempts}")
    if data["waits_for"] is not None:
        now_or_later = data["next_run_at"]
        say(f"next run    {now_or_later}", highlight=False)
        say(f"waits for   {escape(data['waits_for'])}", highlight=False)
    if chunk.last_error or chunk.dead_reason:
        text = chunk.dead_reason or chunk.last_error or ""
        say(f"last error  {escape(redact(text))} ({chunk.last_category})", highlight=False)
    say(f"payload     {escape(redact(json.dumps(chunk.payload)))}", highlight=False)
    say(f"checkpoint  {escape(redact(json.dumps(chunk.checkpoint)))}", highlight=False)
    for a in data["attempt_log"]:
        detail = a.get("message") or a.get("category") or ""
        say(
            f"  attempt {a.get('attempt')}: {a.get('outcome')} at {a.get('finished_at')} "
            f"{escape(redact(str(detail)))}",
            highlight=False,
        )
    for e in data["audit"]:
        say(f"  audit {e['at']}: {e['action']} by {e['actor']} ({escape(e['reason'])})")
