"""`chunksync demo`: the main job on embedded SQLite (chunksync.demo), from a fresh database when
asked."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from chunksync.cli import cli, console, fail, friendly, open_app, state


@cli.command()
@friendly
def demo(
    chunks: Annotated[int, typer.Option(min=1, help="Chunks to plan.")] = 200,
    failure_rate: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Share of attempts that fail.")
    ] = 0.25,
    seed: Annotated[int, typer.Option(help="Seed of the fault plan and of the jitter.")] = 7,
    concurrency: Annotated[int, typer.Option(min=1, help="Worker slots.")] = 4,
    time_scale: Annotated[
        float, typer.Option(min=0.0001, help="Multiply every retry delay by this.")
    ] = 0.01,
    crashes: Annotated[
        int, typer.Option(min=0, help="Chunks left behind by a simulated dead worker.")
    ] = 3,
    fresh: Annotated[bool, typer.Option(help="Start from an empty demo database.")] = False,
) -> None:
    """The main job on embedded SQLite: a faulty source, self-healing workers, and a report."""
    from chunksync.demo import run_demo

    if fresh:
        _remove_sqlite(state.db)
    with open_app() as app:
        run_demo(
            app,
            console,
            chunks=chunks,
            failure_rate=failure_rate,
            seed=seed,
            concurrency=concurrency,
            time_scale=time_scale,
            crashes=crashes,
        )


def _remove_sqlite(url: str) -> None:
    from chunksync.backends.sqlite import path_from_url

    if not url.startswith("sqlite:"):
        raise fail("--fresh only works on a SQLite demo database")
    path = path_from_url(url)
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)
