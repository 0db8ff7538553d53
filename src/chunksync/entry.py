"""The `chunksync` command. A sync's helper processes start first (`processes.prestart`), so
that they import the engine on the other cores while this process imports the CLI."""

from __future__ import annotations

import sys

from chunksync import processes


def main() -> None:
    processes.prestart(sys.argv[1:])
    from chunksync.cli import main as cli_main

    cli_main()
