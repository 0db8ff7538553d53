"""A TCP proxy for the tests, between the workers and Dovecot, that misbehaves on demand.

asyncio, in a thread of its own, on loopback. Faults (called from any thread):

- `reset()`: every open connection is reset (RST: SO_LINGER 0, then abort), both sides;
- `stall(seconds)`: server-to-client bytes stop flowing for that long (a read past the
  client's socket timeout), the connections staying open;
- `slow(bytes_per_s, seconds)`: server-to-client bandwidth is capped for that long;
- `cut(seconds)`: every open connection is reset and new ones are refused for that long (a
  network partition between one client and its server).

`base_rate` (bytes/s per connection, 0: none) caps every connection all the time, a WAN link.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
import time
from dataclasses import dataclass

READ_BYTES = 65536
SLICE_SECONDS = 0.05  # the pace of a throttled or stalled pump


@dataclass(slots=True)
class ProxyCounts:
    connections: int = 0
    resets: int = 0  # connections reset
    stalls: int = 0
    slows: int = 0


class FaultyProxy:
    def __init__(
        self, target_host: str, target_port: int, base_rate: float = 0.0, port: int = 0
    ) -> None:
        self.target = (target_host, target_port)
        self.base_rate = base_rate
        self.port = port
        self.counts = ProxyCounts()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="proxy", daemon=True)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._stalled_until = 0.0
        self._slow_until = 0.0
        self._cut_until = 0.0
        self._rate = 0.0

    def start(self) -> FaultyProxy:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._listen(), self._loop)
        self.port = future.result(10)
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        self._loop.close()

    # --- faults -----------------------------------------------------------------

    def reset(self) -> int:
        """Reset every open connection; returns how many."""
        return asyncio.run_coroutine_threadsafe(self._reset(), self._loop).result(10)

    def stall(self, seconds: float) -> None:
        self.counts.stalls += 1
        self._stalled_until = time.monotonic() + seconds

    def cut(self, seconds: float) -> int:
        """Reset every open connection and refuse new ones for `seconds`; returns how many."""
        self._cut_until = time.monotonic() + seconds
        return self.reset()

    def heal(self) -> None:
        """End a cut now: new connections are let through again."""
        self._cut_until = 0.0

    def slow(self, bytes_per_s: float, seconds: float) -> None:
        self.counts.slows += 1
        self._rate = bytes_per_s
        self._slow_until = time.monotonic() + seconds

    # --- the loop's side -----------------------------------------------------------------

    async def _listen(self) -> int:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
        await self._reset(count=False)

    async def _reset(self, *, count: bool = True) -> int:
        writers = list(self._writers)
        for writer in writers:
            sock = writer.get_extra_info("socket")
            if sock is not None:
                try:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                except OSError:
                    pass
            writer.transport.abort()
        self._writers.clear()
        if count:
            self.counts.resets += len(writers)
        return len(writers)

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        if time.monotonic() < self._cut_until:
            client_w.transport.abort()
            return
        try:
            server_r, server_w = await asyncio.open_connection(*self.target)
        except OSError:
            client_w.transport.abort()
            return
        self.counts.connections += 1
        self._writers |= {client_w, server_w}
        up = asyncio.ensure_future(self._pump(client_r, server_w, downstream=False))
        down = asyncio.ensure_future(self._pump(server_r, client_w, downstream=True))
        await asyncio.wait({up, down}, return_when=asyncio.FIRST_COMPLETED)
        for task in (up, down):
            task.cancel()
        for writer in (client_w, server_w):
            self._writers.discard(writer)
            writer.transport.abort()

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, downstream: bool
    ) -> None:
        try:
            while data := await reader.read(READ_BYTES):
                while downstream and data:
                    now = time.monotonic()
                    if now < self._stalled_until:
                        await asyncio.sleep(SLICE_SECONDS)
                        continue
                    rate = self._rate if now < self._slow_until else self.base_rate
                    if rate > 0:
                        piece = max(1, int(rate * SLICE_SECONDS))
                        writer.write(data[:piece])
                        data = data[piece:]
                        await writer.drain()
                        await asyncio.sleep(SLICE_SECONDS)
                        continue
                    break
                if data:
                    writer.write(data)
                    await writer.drain()
        except (ConnectionError, OSError):
            pass
