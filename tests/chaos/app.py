"""The App the chaos workers load: `chunksync --app tests.chaos.app:make_app worker ...`.

Its handler (kind `chaos`) fails at a configured rate with every error category, as the real
exception a source raises (chunksync.sources.demo.make_failure), decided by a hash of
(seed, chunk, attempt) so that a run is reproducible whatever the order chunks are taken in.
On success it records its side effect, one O_APPEND line `chunk worker attempt`, in the effects
file: the ledger the checks compare with the database. With a connection cap set (the chaos
queue's dependency declared with `connections`), every call also records when it ran, one line
`chunk worker attempt start end` in the calls file: the checks count the calls that ran at once.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import replace

from chunksync.app import App
from chunksync.context import ChunkContext
from chunksync.retry import DEFAULT_POLICY, RetryPolicy
from chunksync.sources.base import default_dependency
from chunksync.sources.demo import FAILURE_MIX, make_failure
from chunksync.sources.mail import MAIL_POLICY

KIND = "chaos"
POLICY = "chaos"
TIME_SCALE = 0.01  # every retry delay, deferral and probe interval of the default policy x this
EFFECTS_ENV = "CHUNKSYNC_CHAOS_EFFECTS"
FAILURE_RATE_ENV = "CHUNKSYNC_CHAOS_FAILURE_RATE"
SEED_ENV = "CHUNKSYNC_CHAOS_SEED"
MAIL_TIME_SCALE_ENV = "CHUNKSYNC_CHAOS_MAIL_TIME_SCALE"  # the default policy's delays x this
CONNECTIONS_ENV = "CHUNKSYNC_CHAOS_CONNECTIONS"  # the chaos dependency's cap ("": none)
CALLS_ENV = "CHUNKSYNC_CHAOS_CALLS"  # where each call records when it ran
SOURCE = f"{KIND}://run"
DEFAULT_FAILURE_RATE = 0.05
DEPENDENCY = default_dependency(SOURCE, KIND)
CATEGORIES = tuple(FAILURE_MIX)


def fraction(*parts: object) -> float:
    """A number in [0, 1) from its parts, the same in every process (unlike hash())."""
    digest = hashlib.blake2b(" ".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def planned_failure(seed: int, rate: float, chunk_id: str, attempt: int) -> str | None:
    """The category this attempt fails with, or None when it succeeds."""
    if fraction(seed, chunk_id, attempt, "fail") >= rate:
        return None
    pick = fraction(seed, chunk_id, attempt, "category") * sum(FAILURE_MIX.values())
    for category, weight in FAILURE_MIX.items():
        pick -= weight
        if pick < 0:
            return category
    return CATEGORIES[-1]


def record_effect(path: str, ctx: ChunkContext, *times: float) -> None:
    line = " ".join([ctx.chunk.id, ctx.worker_id, str(ctx.attempt), *map(repr, times)]) + "\n"
    _append(path, line.encode())


def _append(path: str, line: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)  # one small O_APPEND write: atomic between processes
    finally:
        os.close(fd)


def chaos_policy() -> RetryPolicy:
    """The default policy, its delays scaled down so that a run takes minutes, not hours."""
    return replace(DEFAULT_POLICY.scaled(TIME_SCALE), name=POLICY)


def make_app(db_url: str) -> App:
    app = App(db_url)
    app.add_policy(chaos_policy())
    mail_scale = float(os.environ.get(MAIL_TIME_SCALE_ENV, "1"))
    if mail_scale != 1.0:  # a shorter run scales the mail queue's policy
        app.add_policy(MAIL_POLICY.scaled(mail_scale))
    rate = float(os.environ.get(FAILURE_RATE_ENV, DEFAULT_FAILURE_RATE))
    seed = int(os.environ.get(SEED_ENV, "1"))
    connections = os.environ.get(CONNECTIONS_ENV, "")
    calls = os.environ.get(CALLS_ENV, "")
    if connections:  # (the harness declares it too: a row keeps the limits it was made with)
        app.dependency(DEPENDENCY, connections=int(connections))

    @app.handler(KIND)
    def chaos(ctx: ChunkContext) -> int:
        started = time.time()
        try:
            return run(ctx)
        finally:
            if calls:
                record_effect(calls, ctx, started, time.time())

    def run(ctx: ChunkContext) -> int:
        category = planned_failure(seed, rate, ctx.chunk.id, ctx.attempt)
        if category is not None:
            raise make_failure(category)
        sleep_s = float(ctx.payload.get("sleep_s", 0.0))
        if sleep_s > 0:
            time.sleep(sleep_s)
        record_effect(os.environ[EFFECTS_ENV], ctx)
        return 1

    return app
