"""The dashboard served by a real uvicorn on loopback, in a thread, for browser and API tests."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from chunksync.app import App
from chunksync.web import create_app

TOKEN = "test-operator-token-0123456789"
START_TIMEOUT_SECONDS = 10.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def serve(
    app: App, *, token: str | None = TOKEN, poll_ms: int = 300, private: bool = False
) -> Iterator[str]:
    """Yield the base URL of the dashboard, serving until the block ends."""
    port = free_port()
    config = uvicorn.Config(
        create_app(app, token=token, poll_ms=poll_ms, private=private),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="off",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="dashboard", daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the dashboard did not start")
        time.sleep(0.02)  # polling the server's own flag, with a deadline
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(START_TIMEOUT_SECONDS)
