"""The `chunksync` command. A sync's helper processes start first (`processes.prestart`), so
that they import the engine on the other cores while this process imports the CLI."""

from __future__ import annotations

import signal
import sys

from chunksync import processes


def main() -> None:
    argv = sys.argv[1:]
    processes.tune_interpreter()
    if processes.command_of(argv)[0] == "worker":
        # Until the worker installs its graceful handler, a SIGTERM (a supervisor, or a deploy,
        # stopping it while it starts) finds nothing to finish: exit 0, as the graceful stop does,
        # rather than die of the signal.
        signal.signal(signal.SIGTERM, _stopped_while_starting)
    processes.prestart(argv)
    from chunksync.cli import main as cli_main

    cli_main()


def _stopped_while_starting(signum: int, frame: object) -> None:
    raise SystemExit(0)
