"""`async def` handlers: each slot thread runs them on an event loop of its own.

A handler that returns a coroutine is run to its end on the calling slot thread's loop (made
once per thread, closed when the slot ends), so the worker's rules hold unchanged: the
watchdog's timeout, the heartbeat thread's lease extension, a stop's grace period. What an
event loop adds is a real cancellation: when the worker gives up on the chunk (its context is
cancelled, by the watchdog or by stop()), the handler's task is cancelled at its next `await`
rather than left running on an abandoned thread, as a plain function must be.

One loop per slot thread rather than one per process: slots are threads already, and a loop
shared by them would let one handler's blocking call stall the others' chunks.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from chunksync.context import ChunkContext
from chunksync.exceptions import LeaseLost

if TYPE_CHECKING:  # asyncio itself is imported when an `async def` handler first runs (9 ms)
    import asyncio

CANCEL_CHECK_SECONDS = 0.05  # how often a running coroutine's context is asked if cancelled

_local = threading.local()


def call(handler: Callable[[ChunkContext], Any], ctx: ChunkContext) -> int | None:
    """The handler's result: awaited on this thread's loop when it is a coroutine."""
    result = handler(ctx)
    if result is None or type(result) is int:  # a plain handler's usual answers, checked first
        return result
    if inspect.isawaitable(result):
        return run(result, ctx)
    return result  # type: ignore[no-any-return]


def run(awaitable: Awaitable[Any], ctx: ChunkContext) -> int | None:
    """Run `awaitable` on this thread's loop until it ends, or until `ctx` is cancelled (then
    the task is cancelled and LeaseLost raised here, as a plain handler's next heartbeat would:
    the worker voids the result)."""
    import asyncio

    loop = _loop()
    try:
        return loop.run_until_complete(_watched(awaitable, ctx))  # type: ignore[no-any-return]
    except asyncio.CancelledError:  # a BaseException: it must not end the slot's thread
        raise LeaseLost(f"the worker gave up on chunk {ctx.chunk.id} (timeout or stop)") from None


async def _watched(awaitable: Awaitable[Any], ctx: ChunkContext) -> Any:
    import asyncio

    task = asyncio.ensure_future(awaitable)
    while True:
        done, _ = await asyncio.wait({task}, timeout=CANCEL_CHECK_SECONDS)
        if done:
            return task.result()
        if ctx.cancelled:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
            raise asyncio.CancelledError


def _loop() -> asyncio.AbstractEventLoop:
    import asyncio

    loop: asyncio.AbstractEventLoop | None = getattr(_local, "loop", None)
    if loop is None or loop.is_closed():
        loop = _local.loop = asyncio.new_event_loop()
    return loop


def close_loop() -> None:
    """Close this thread's loop, if it made one (a slot thread's last act)."""
    loop: asyncio.AbstractEventLoop | None = getattr(_local, "loop", None)
    if loop is not None and not loop.is_closed():
        try:
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()
    _local.loop = None


def is_async(fn: Callable[..., Any]) -> bool:
    """Whether `fn` is an `async def` function (what registration may want to know)."""
    return inspect.iscoroutinefunction(fn)
