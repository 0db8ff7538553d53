"""`chunksync migrate` (apply the pending migrations) and `chunksync migrate --plan` (say what
would run, online or not, and the lock each step takes, changing nothing).

In production mode (CHUNKSYNC_MIGRATE=never) this is the only command that changes the schema.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

import typer

from chunksync.cli import cli, console, friendly, print_json, state


@cli.command("migrate")
@friendly
def migrate_cmd(
    show_plan: Annotated[
        bool, typer.Option("--plan", help="Print what would run and the locks; change nothing.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="With --plan: machine-readable.")] = False,
) -> None:
    """Bring the schema up to date, or (--plan) say what that would run and how."""
    from chunksync.backends import open_backend
    from chunksync.backends.migrate import plan

    with open_backend(state.db, migrate=False) as backend:
        found = plan(backend)
        if show_plan:
            if as_json:
                data = asdict(found)
                for step, shown in zip(found.steps, data["steps"], strict=True):
                    shown["online"] = step.online
                print_json(data)
                return
            _print_plan(found)
            return
        version = backend.migrate()
    ran = len(found.steps)
    console.print(
        f"schema at version {version}: {ran} migration step(s) applied",
        markup=False,
        soft_wrap=True,
    )


def _print_plan(found: object) -> None:
    from chunksync.backends.migrate import Plan

    assert isinstance(found, Plan)
    console.print(
        f"database at schema version {found.current}, this chunksync at {found.latest}",
        markup=False,
        soft_wrap=True,
    )
    if not found.steps:
        console.print("nothing to run", markup=False, soft_wrap=True)
        return
    for step in found.steps:
        how = "online" if step.online else "OFFLINE: work waits"
        phase = "expand" if step.expand else "contract (older workers refuse the result)"
        runs = (
            "statement by statement, each committing on its own"
            if step.outside
            else "in one transaction: its locks last until it commits"
        )
        console.print(
            f"{step.version:04d} {step.name}: {how}; {phase}; {runs}",
            markup=False,
            soft_wrap=True,
        )
        for e in step.effects:
            mark = "online " if e.online else "offline"
            console.print(
                f"  {mark} {e.statement[:70]}  -- lock: {e.lock}", markup=False, soft_wrap=True
            )
    console.print("every step runs under the migration lock", markup=False, soft_wrap=True)
