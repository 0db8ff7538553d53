"""Handler isolation: a queue kind's handler run in a process of its own, killed at its timeout.

Python cannot stop a thread, so a handler past the watchdog's timeout is abandoned and may
still act after its chunk was retried elsewhere. For a kind whose handler must not outlive its
attempt, the worker runs it in a forked child (`Worker(isolate={"kind": seconds})`): at the
timeout the child is killed with SIGKILL, and nothing of it runs on. The price is a fork per
chunk (benchmarks/bench_isolation.py measures it).

The child gets the chunk's context detached from the database (the parent's connections are
not its to use): its heartbeats and checkpoints raise, and the worker's heartbeat thread keeps
the lease alive instead. Its result, or its exception, comes back through a pipe.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from chunksync.context import ChunkContext

Handler = Callable[[ChunkContext], int | None]
REAP_SECONDS = 5.0  # how long a killed or finished child gets to be reaped


class HandlerKilled(TimeoutError):
    """An isolated handler ran past its timeout and its process was killed."""


def run_isolated(handler: Handler, ctx: ChunkContext, timeout_s: float) -> int | None:
    """`handler(ctx)` in a forked child; its result, its exception re-raised here, or
    HandlerKilled once `timeout_s` has passed (the child is killed first)."""
    forked = multiprocessing.get_context("fork")
    reader, writer = forked.Pipe(duplex=False)
    child = forked.Process(target=_child, args=(handler, ctx, writer), daemon=True)
    child.start()
    writer.close()
    try:
        if not reader.poll(timeout_s):
            child.kill()
            raise HandlerKilled(
                f"handler ran past its isolation timeout of {timeout_s:g} s: its process was killed"
            )
        try:
            kind, value = reader.recv()
        except EOFError:
            child.join(REAP_SECONDS)
            raise RuntimeError(
                f"the handler's process died (exit status {child.exitcode})"
            ) from None
    finally:
        reader.close()
        child.join(REAP_SECONDS)
    if kind == "error":
        raise value
    result: int | None = value
    return result


def _child(handler: Handler, ctx: ChunkContext, writer: Connection) -> None:
    ctx._cancel()  # the parent's database connections are not the child's to use
    message: tuple[str, Any]
    try:
        message = ("ok", handler(ctx))
    except Exception as exc:
        message = ("error", exc)
    try:
        writer.send(message)
    except (pickle.PicklingError, TypeError, AttributeError):
        _kind, value = message
        writer.send(("error", RuntimeError(f"{type(value).__name__}: {value}")))
    writer.close()
    os._exit(0)  # nothing of the parent's (its threads, atexit hooks) runs in the child
