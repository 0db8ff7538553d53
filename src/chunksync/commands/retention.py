"""`chunksync cleanup`: apply retention now (the maintenance leader also does it on its own)."""

from __future__ import annotations

from typing import Annotated

import typer

from chunksync.cli import cli, console, friendly, open_app
from chunksync.observe.retention import RETENTION_BATCH_ROWS, RETENTION_DAYS, cleanup, parse_age


@cli.command("cleanup")
@friendly
def cleanup_cmd(
    older_than: Annotated[
        str, typer.Option("--older-than", help="Age to keep: 30d, 12h, 90m, 45s.")
    ] = f"{RETENTION_DAYS}d",
    batch: Annotated[int, typer.Option(min=1, help="Rows per delete (one transaction).")] = (
        RETENTION_BATCH_ROWS
    ),
) -> None:
    """Delete health metrics, audit entries, finished chunks and resolved alerts older than N."""
    seconds = parse_age(older_than)
    with open_app(create=False) as app:
        done = cleanup(app.manager, seconds, batch=batch, max_batches=None)
    console.print(
        f"removed {done.attempts} attempt row(s), {done.audit} audit entr(ies), "
        f"{done.chunks} finished chunk(s), {done.alerts} resolved alert(s) "
        f"older than {older_than}"
    )
