"""`chunksync check`: the database's integrity and the chunk invariants, in sentences.

It opens the database without migrating it (a damaged or older database is looked at as it is)
and exits 1 when it finds damage, 0 when it finds none (notes do not count).
"""

from __future__ import annotations

from typing import Annotated

import typer

from chunksync.cli import cli, console, err, friendly, print_json, state


@cli.command("check")
@friendly
def check_cmd(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    limit: Annotated[int, typer.Option(min=1, help="Chunks listed per finding at most.")] = 1000,
) -> None:
    """Check the database for damage and every chunk against the rules; say what to do."""
    from chunksync.backends import open_backend
    from chunksync.check import check_database, unreadable
    from chunksync.exceptions import BackendError

    try:
        backend = open_backend(state.db, create=False, migrate=False)
    except BackendError as exc:
        report = unreadable(exc)
    else:
        with backend:
            report = check_database(backend, limit=limit)
    if as_json:
        print_json(report.as_dict())
    else:
        for finding in report.findings:
            (console if finding.severity == "note" else err).print(finding.line(), markup=False)
        verdict = "no damage found" if report.ok else f"{report.violations} violation(s) found"
        console.print(f"{len(report.checked)} check(s) run: {verdict}", markup=False)
    if not report.ok:
        raise typer.Exit(1)
