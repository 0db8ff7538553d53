"""`chunksync bench-policy`: replay one seeded fault stream against the built-in policies and
the user's own policy files, on a simulated clock (see chunksync.simulate)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from chunksync.cli import cli, console, fail, friendly


@cli.command("bench-policy")
@friendly
def bench_policy(
    policy: Annotated[
        list[Path] | None,
        typer.Option("--policy", help="A policy TOML file to evaluate too (repeatable)."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the fault stream and of the jitter.")] = 7,
    stream: Annotated[
        Path | None, typer.Option(help="Replay this recorded stream (JSON) instead.")
    ] = None,
    save_stream: Annotated[
        Path | None, typer.Option("--save-stream", help="Write the stream replayed (JSON).")
    ] = None,
) -> None:
    """Measure retry policies on the same faults: attempts, deaths, recovery after outages."""
    from chunksync.faults import FaultStream, generate_stream
    from chunksync.retry import load_policy
    from chunksync.simreport import report
    from chunksync.simulate import builtin_policies, run_all, specs_for

    specs = builtin_policies() + specs_for([load_policy(p) for p in policy or []])
    labels = [s.label for s in specs]
    if len(set(labels)) != len(labels):
        raise fail(f"two policies share a name ({', '.join(labels)}): rename one with 'name ='")
    if stream is not None:
        try:
            faults = FaultStream.from_json(stream.read_text(encoding="utf-8"))
        except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
            raise fail(f"cannot read the fault stream {stream}: {exc}") from None
    else:
        faults = generate_stream(seed)
    if save_stream is not None:
        save_stream.write_text(faults.to_json(), encoding="utf-8")
    for line in report(run_all(faults, specs, seed=seed)):
        console.print(line, markup=False, highlight=False, soft_wrap=True)
