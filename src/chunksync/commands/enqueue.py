"""`chunksync enqueue SOURCE`: a queue from the command line, its payloads from a JSON Lines
file, stdin or `--payload`, or planned by the source when none are given.

`--unique-key` makes enqueueing idempotent: while an unfinished queue of the tenant holds the
key, enqueueing again returns that queue and adds nothing (the database's unique index decides,
see migration queue_unique_keys), so a cron job or a retried deploy step cannot double a sync.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, TextIO

import typer

from chunksync.cli import cli, console, friendly, open_app, print_json
from chunksync.commands import output
from chunksync.exceptions import ConfigurationError, InvalidPayload
from chunksync.models import DEFAULT_TENANT


@cli.command()
@friendly
def enqueue(
    source: Annotated[str, typer.Argument(help="The queue's source URI, e.g. pages://host.")],
    payloads: Annotated[
        str | None,
        typer.Option(
            "--payloads", help="A JSON Lines file of payloads, one chunk per line; - for stdin."
        ),
    ] = None,
    payload: Annotated[
        list[str] | None,
        typer.Option("--payload", help="One chunk's payload as JSON (repeatable)."),
    ] = None,
    name: Annotated[str | None, typer.Option(help="The queue's name (default: SOURCE).")] = None,
    priority: Annotated[int, typer.Option(help="Higher runs first.")] = 0,
    tenant: Annotated[str, typer.Option(help="The tenant it belongs to.")] = DEFAULT_TENANT,
    unique_key: Annotated[
        str | None,
        typer.Option(
            "--unique-key", help="While an unfinished queue holds this key, return it instead."
        ),
    ] = None,
    policy: Annotated[str | None, typer.Option(help="Retry policy by name.")] = None,
    max_attempts: Annotated[
        int | None, typer.Option("--max-attempts", min=1, help="Attempts per chunk.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Create a queue: payloads from --payloads/--payload, or planned by the source."""
    given = _payloads(payloads, payload or [])
    with open_app() as app:
        before = app.manager.now()
        options: dict[str, Any] = {"name": name, "tenant": tenant, "priority": priority}
        if policy is not None:
            options["policy"] = policy
        queue = app.create_queue(
            source, given, max_attempts=max_attempts, unique_key=unique_key, **options
        )
        created = not (unique_key is not None and queue.created_at < before)
    if as_json:
        print_json({"created": created, "queue": output.queue_json(queue)})
        return
    if created:
        said = f"queue {queue.name} ({queue.id[:8]}) created with {queue.total} chunk(s)"
    else:
        said = (
            f"queue {queue.name} ({queue.id[:8]}) already holds the key '{unique_key}' "
            f"({queue.status}): returned it, nothing added"
        )
    console.print(said, markup=False, highlight=False)


def _payloads(path: str | None, inline: list[str]) -> list[Any] | None:
    """Every payload given, in order (inline ones last); None when none was given, so that
    the source plans the queue."""
    if path is None and not inline:
        return None
    found: list[Any] = []
    if path == "-":
        found.extend(_lines(sys.stdin, "stdin"))
    elif path is not None:
        try:
            with Path(path).open(encoding="utf-8") as f:
                found.extend(_lines(f, path))
        except OSError as exc:
            raise ConfigurationError(f"cannot read the payloads file {path}: {exc}") from None
    for n, text in enumerate(inline, 1):
        found.append(_parse(text, f"--payload number {n}"))
    return found


def _lines(stream: TextIO, where: str) -> Iterator[Any]:
    for n, line in enumerate(stream, 1):
        if line.strip():
            yield _parse(line, f"{where} line {n}")


def _parse(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise InvalidPayload(f"{where} is not JSON: {exc}") from None
