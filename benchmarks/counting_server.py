"""A small stateful TCP server on loopback that counts what a fleet does to it.

One request per connection: a line in (the caller's chunk id), a service time, a line out
("ok <id>"), then the server closes. It records the time of every call (at accept), how many
calls it was serving at once (and every moment that number went above a cap), and which chunk
ids it answered. `outage(True)` makes it accept and reset each connection at once (the caller
sees a connection reset, as from a crashed service behind a load balancer); `outage(False)`
serves again.

A call counts as being served from its accept until just before its answer is written: the
caller cannot finish its chunk (and so free its slot for another caller) before it has the
answer, so a cap seen broken here was broken by the callers, never by the order in which this
server's threads happen to run.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from dataclasses import dataclass, field

READ_TIMEOUT_SECONDS = 10.0
LISTEN_BACKLOG = 512


@dataclass(frozen=True, slots=True)
class Call:
    """One connection: when it was accepted and whether it met an outage."""

    at: float
    refused: bool


@dataclass(slots=True)
class Record:
    """What the server saw, kept under its lock."""

    calls: list[Call] = field(default_factory=list)
    answered: set[str] = field(default_factory=set)
    in_progress: int = 0
    max_in_progress: int = 0
    crossings: dict[int, int] = field(default_factory=dict)  # cap -> times it was exceeded


class CountingServer:
    """`start()`, read `port`, `outage(True/False)`, `stop()`; figures from `snapshot()`."""

    def __init__(self, service_s: float = 0.003, caps: tuple[int, ...] = ()) -> None:
        self.service_s = service_s
        self.caps = caps
        self.record = Record(crossings={cap: 0 for cap in caps})
        self._lock = threading.Lock()
        self._refusing = False
        self._stopped = threading.Event()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._thread = threading.Thread(target=self._accept_loop, name="counting-server")

    @property
    def port(self) -> int:
        port: int = self._sock.getsockname()[1]
        return port

    def start(self) -> CountingServer:
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(LISTEN_BACKLOG)
        self._sock.settimeout(0.2)  # so that stop() is seen within 0.2 s
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join(5)
        self._sock.close()

    def outage(self, on: bool) -> None:
        with self._lock:
            self._refusing = on

    def answered_count(self) -> int:
        with self._lock:
            return len(self.record.answered)

    def snapshot(self) -> tuple[list[Call], set[str], int, dict[int, int]]:
        """Calls (in accept order), answered chunk ids, the most served at once, and for each
        cap how many times the number served went above it."""
        with self._lock:
            r = self.record
            return list(r.calls), set(r.answered), r.max_in_progress, dict(r.crossings)

    # --- serving ---------------------------------------------------------------------------

    def _accept_loop(self) -> None:
        while not self._stopped.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            at = time.time()
            with self._lock:
                refusing = self._refusing
                self.record.calls.append(Call(at, refusing))
            if refusing:
                _reset(conn)
                continue
            self._begin()
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _begin(self) -> None:
        with self._lock:
            r = self.record
            r.in_progress += 1
            r.max_in_progress = max(r.max_in_progress, r.in_progress)
            for cap in self.caps:
                if r.in_progress == cap + 1:  # a crossing: from within the cap to above it
                    r.crossings[cap] += 1

    def _end(self, chunk_id: str | None) -> None:
        with self._lock:
            self.record.in_progress -= 1
            if chunk_id:
                self.record.answered.add(chunk_id)

    def _serve(self, conn: socket.socket) -> None:
        chunk_id = None
        try:
            conn.settimeout(READ_TIMEOUT_SECONDS)
            line = conn.makefile("rb").readline()
            chunk_id = line.decode("ascii", "replace").strip() or None
            time.sleep(self.service_s)
        except OSError:
            chunk_id = None
        finally:
            self._end(chunk_id)  # before the answer: see the module's docstring
        try:
            if chunk_id:
                conn.sendall(f"ok {chunk_id}\n".encode())
        except OSError:
            pass
        finally:
            conn.close()


def _reset(conn: socket.socket) -> None:
    """Close with a reset (linger 0): the caller's read fails at once."""
    try:
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    finally:
        conn.close()
