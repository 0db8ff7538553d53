"""A scripted IMAP server over a real socket, for the replies Dovecot cannot be made to give on
cue (a connection dropped at LOGIN, a BYE or an EOF in the middle of a FETCH)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def scripted_server(script: bytes) -> Iterator[int]:
    """A server on a free loopback port (yielded) that greets, answers CAPABILITY, and answers
    the next command with `script` (its `{tag}` replaced by the command's tag), then closes."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = listener.accept()
        with conn, conn.makefile("rb") as lines:
            conn.sendall(b"* OK ready\r\n")
            for line in lines:
                tag, command = line.split()[:2]
                if command.upper() == b"CAPABILITY":
                    conn.sendall(b"* CAPABILITY IMAP4rev1\r\n" + tag + b" OK done\r\n")
                    continue
                conn.sendall(script.replace(b"{tag}", tag))
                return

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    try:
        yield listener.getsockname()[1]
    finally:
        server.join(5)
        listener.close()
