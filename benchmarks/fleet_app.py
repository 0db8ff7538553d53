"""The fleet benchmark's app, loaded by the real CLI in each worker process:
`chunksync --db URL --app benchmarks.fleet_app:make_app worker ...`.

The `fleet` handler opens one TCP connection per chunk to the server its queue's source names
(`fleet://127.0.0.1:PORT/calls`), sends the chunk id, reads the answer and closes. The `fleet`
policy is patient: the benchmark's outage must cost time, never a chunk.
"""

from __future__ import annotations

import os
import socket
from typing import Any
from urllib.parse import urlsplit

from chunksync.app import App
from chunksync.context import ChunkContext
from chunksync.models import ErrorCategory
from chunksync.retry import CategoryRule, RetryPolicy, Schedule, ScheduleKind, StressConfig
from chunksync.runtime.worker import Worker

KIND = "fleet"
POLICY = "fleet"
CALL_TIMEOUT_SECONDS = 5.0
MAX_ATTEMPTS = 50
# An experiment, off by default: cap each slot's claim batch (the CLI has no option for it),
# to see what claiming several chunks of a capped dependency at once costs.
CLAIM_BATCH = int(os.environ.get("CHUNKSYNC_BENCH_FLEET_CLAIM_BATCH", "0"))


def fleet_policy() -> RetryPolicy:
    """Network faults retried quickly and often; chunks failing while the dependency is
    stressed deferred 2 s (doubling to 10 s) instead of the default 30 s, so the run's tail
    after the outage stays short. The gate's probe schedule is the default one (first probe
    0.5 s after it shuts, doubling to 5 s): the one the documentation states."""
    quick = CategoryRule(True, Schedule(ScheduleKind.EXPONENTIAL, 0.5, 2.0, max_s=5.0))
    rules = {ErrorCategory.NETWORK: quick, ErrorCategory.TIMEOUT: quick}
    stress = StressConfig(defer_s=2.0, max_defer_s=10.0, max_deferrals=20, max_probe_deferrals=50)
    return RetryPolicy(POLICY, rules=rules, max_attempts=MAX_ATTEMPTS, stress=stress)


def call(ctx: ChunkContext) -> int:
    """One call of the server: a line out, a line back."""
    where = urlsplit(ctx.queue.source)
    with socket.create_connection(
        (where.hostname or "127.0.0.1", where.port or 0), timeout=CALL_TIMEOUT_SECONDS
    ) as conn:
        conn.sendall(f"{ctx.chunk.id}\n".encode())
        answer = conn.makefile("rb").readline()
    if not answer.startswith(b"ok "):
        raise ConnectionError("the server closed the connection without an answer")
    return 1


class FleetApp(App):
    def worker(self, **options: Any) -> Worker:
        if CLAIM_BATCH:
            options.setdefault("batch", CLAIM_BATCH)
        return super().worker(**options)


def register(app: App) -> App:
    app.handler(KIND)(call)
    app.add_policy(fleet_policy())
    return app


def make_app(db_url: str) -> App:
    return register(FleetApp(db_url))
