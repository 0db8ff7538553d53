"""`chunksync rollups`: the attempt rollups that health answers read, folded, trimmed or
recomputed."""

from __future__ import annotations

from typing import Annotated

import typer

from chunksync.cli import cli, console, friendly, open_app
from chunksync.observe import rollups
from chunksync.observe.retention import parse_age

rollups_cli = typer.Typer(help="The attempt rollups behind every health answer.")
cli.add_typer(rollups_cli, name="rollups")


@rollups_cli.command("rebuild")
@friendly
def rebuild_cmd() -> None:
    """Recompute, exactly, the rollups of every attempt still kept (older ones stay)."""
    with open_app(create=False) as app:
        since = rollups.rebuild(app.manager)
    if since is None:
        console.print("no attempts: nothing to recompute")
    else:
        console.print(f"recomputed the rollups from {since:.0f} (the oldest kept attempt's hour)")


@rollups_cli.command("fold")
@friendly
def fold_cmd() -> None:
    """Fold every attempt written so far into the rollups now (the leader does it every few
    seconds, a little behind; answers are exact either way)."""
    with open_app(create=False) as app:
        folded = rollups.fold(app.manager, lag_s=0)
    console.print(f"folded {folded} attempt ids into the rollups")


@rollups_cli.command("trim")
@friendly
def trim_cmd(
    keep: Annotated[
        str, typer.Option(help="Age of hourly rollups to keep: 400d, 52w.")
    ] = f"{rollups.ROLLUP_RETENTION_DAYS:.0f}d",
    keep_minutes: Annotated[
        str, typer.Option(help="Age of minute rollups to keep: 2d, 12h.")
    ] = f"{rollups.MINUTE_ROLLUP_KEEP_SECONDS / 3600:.0f}h",
) -> None:
    """Delete rollups older than their keep (the maintenance leader also does it)."""
    with open_app(create=False) as app:
        done = rollups.trim(
            app.manager,
            hour_keep_s=parse_age(keep),
            minute_keep_s=parse_age(keep_minutes),
            max_batches=None,
        )
    console.print(
        f"removed {done.minutes} minute, {done.hours} hourly and {done.latency} latency rollup rows"
    )
