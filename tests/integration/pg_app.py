"""Handlers for the worker-process tests, loaded by the real CLI:
`chunksync --db URL --app tests.integration.pg_app:make_app worker ...`.

Each handler records its side effect in the `side_effects` table (on a connection of its own,
outside chunksync's two), so that a test can count how many times each chunk really ran.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import psycopg

from chunksync.app import App
from chunksync.context import ChunkContext

SIDE_EFFECTS_TABLE = """
CREATE TABLE IF NOT EXISTS side_effects (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    chunk_id  uuid NOT NULL,
    pid       integer NOT NULL,
    kind      text NOT NULL,
    at        double precision NOT NULL DEFAULT date_part('epoch', clock_timestamp())
)
"""
HANG_SECONDS = 120.0  # a first attempt of a "hang" chunk waits here to be SIGKILLed


def make_app(db_url: str) -> App:
    app = App(db_url)
    lock = threading.Lock()
    conn: list[psycopg.Connection[Any]] = []

    def record(ctx: ChunkContext, kind: str) -> None:
        with lock:
            if not conn:
                conn.append(psycopg.connect(db_url, autocommit=True, application_name="effects"))
            conn[0].execute(
                "INSERT INTO side_effects (chunk_id, pid, kind) VALUES (%s, %s, %s)",
                (ctx.chunk.id, os.getpid(), kind),
            )

    @app.handler("effect")
    def effect(ctx: ChunkContext) -> int:
        record(ctx, "done")
        return 1

    @app.handler("hang")
    def hang(ctx: ChunkContext) -> int:
        if ctx.attempt == 1:
            record(ctx, "started")
            time.sleep(HANG_SECONDS)
        record(ctx, "done")
        return 1

    return app
