"""`python -m chunksync` is the `chunksync` command."""

from __future__ import annotations

from chunksync.entry import main

main()
