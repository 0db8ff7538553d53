"""`python -m tests.chaos`: the chaos run of `make chaos`. Exits non-zero on any loss,
duplicate or broken invariant. Options: --chunks, --seed, --failure-rate, --backends, --json,
--rolling (the rolling upgrade's chunks, tests/chaos/upgrade.py), --power (the power-loss
loop's kills, tests/chaos/power.py)."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import tempfile
from pathlib import Path

from tests.chaos.harness import ChaosConfig
from tests.chaos.power import kill_loop
from tests.chaos.run import lines, run_backend
from tests.chaos.upgrade import run_standalone


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos", description=__doc__)
    parser.add_argument("--chunks", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--failure-rate", type=float, default=0.05)
    parser.add_argument("--work-ms", type=float, default=20.0, help="time each success takes")
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--imap-messages", type=int, default=20_000, help="0: no mail sync")
    parser.add_argument("--watch-appends", type=int, default=50, help="0: no watching sync")
    parser.add_argument("--workdir", type=Path, default=None, help="keep logs and databases here")
    parser.add_argument("--json", type=Path, default=None, help="write the summary here")
    parser.add_argument(
        "--rolling", type=int, default=20_000,
        help="chunks of the rolling upgrade run on PostgreSQL (0: none)",
    )  # fmt: skip
    parser.add_argument(
        "--power", type=int, default=2_000,
        help="SIGKILLs of the power-loss loop on SQLite, tests/chaos/power.py (0: none)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    # SIGTERM (kill, pkill) unwinds like Ctrl-C: the harness's finally blocks stop its workers,
    # its PostgreSQL cluster and its Dovecot instead of leaving them running.
    signal.signal(signal.SIGTERM, _terminate)
    logging.getLogger("psycopg.pool").setLevel(logging.ERROR)  # restarts are on purpose here
    outcomes = []
    for backend in filter(None, args.backends.split(",")):
        config = ChaosConfig(
            backend=backend,
            chunks=args.chunks,
            seed=args.seed,
            failure_rate=args.failure_rate,
            work_ms=args.work_ms,
            imap_messages=args.imap_messages,
            watch_appends=args.watch_appends,
        )
        workdir = None if args.workdir is None else args.workdir / backend
        outcomes.append(run_backend(config, workdir))
    for line in lines(outcomes):
        print(line)
    if args.json is not None:
        args.json.write_text(json.dumps([o.summary() for o in outcomes], indent=2) + "\n")
    rolled = True
    if args.rolling:
        with tempfile.TemporaryDirectory(prefix="rolling-") as tmp:
            up = run_standalone(
                args.workdir / "rolling" if args.workdir else Path(tmp), args.rolling
            )
        print(up.figures())
        rolled = up.ok
    powered = True
    if args.power:
        with tempfile.TemporaryDirectory(prefix="power-") as tmp:
            loss = kill_loop(f"sqlite:///{Path(tmp) / 'power.db'}", args.power, 20_000)
        print(loss.figures())
        powered = not loss.violations and set(loss.by_status) <= {"completed", "dead"}
    return 0 if all(o.ok for o in outcomes) and rolled and powered else 1


def _terminate(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


if __name__ == "__main__":
    sys.exit(main())
