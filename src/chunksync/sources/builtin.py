"""The sources chunksync ships, registered on every App."""

from __future__ import annotations

from chunksync.sources.base import Source


def sources() -> list[Source]:
    from chunksync.sources.demo import DemoSource

    found: list[Source] = [DemoSource()]
    return found
