"""Power loss, many times over: SQLite workers SIGKILLed at random moments of their life, in a
loop of hundreds or thousands, and `chunksync check` after every kill.

Each worker is forked from the harness, which has chunksync imported already: a kill costs a
fork, not an interpreter's start, so thousands fit in minutes (`make chaos`: 2,000; the test in
`make test`: 300; `tests/integration/test_power_loss.py` kills the real CLI's workers 12 times).
A worker lives a random 0-150 ms: opening the database, claiming, running a batch, reporting it,
recovering the chunks of the workers killed before it. Then one worker drains what is left.
"""

from __future__ import annotations

import os
import random
import signal
import time
from collections import Counter
from dataclasses import dataclass, field

from chunksync.app import App
from chunksync.check import DAMAGE, CheckReport, check_database
from chunksync.models import ChunkStatus, QueueStatus

MAX_LIFE_S = 0.15
FINISHED = frozenset({QueueStatus.COMPLETED, QueueStatus.FAILED, QueueStatus.CANCELLED})


@dataclass(slots=True)
class PowerLoss:
    kills: int = 0
    checks: int = 0
    violations: list[str] = field(default_factory=list)  # check's findings, after any kill
    done_before_drain: int = 0  # chunks the killed workers finished between them
    by_status: dict[str, int] = field(default_factory=dict)  # at the end
    dead_reasons: Counter[str] = field(default_factory=Counter)
    loop_seconds: float = 0.0  # the kills and checks, before the drain
    seconds: float = 0.0

    def figures(self) -> str:
        return (
            f"power_kills={self.kills} power_violations={len(self.violations)}"
            f" power_done_before_drain={self.done_before_drain}"
            f" power_checks={self.checks}"
            f" power_statuses={','.join(f'{k}:{v}' for k, v in sorted(self.by_status.items()))}"
            f" power_dead_reasons={','.join(f'{k}:{v}' for k, v in self.dead_reasons.items())}"
            f" power_loop_seconds={self.loop_seconds:.0f} power_seconds={self.seconds:.0f}"
        )


def kill_loop(
    url: str,
    kills: int,
    chunks: int,
    *,
    seed: int = 11,
    work_ms: float = 1.0,
    check_every: int = 10,
) -> PowerLoss:
    """Fork a worker, let it live a random moment, SIGKILL it; `kills` times, checking the
    database right after every `check_every`-th kill. Then drain the queue and check again."""
    rng = random.Random(seed)
    began = time.monotonic()
    with App(url) as app:
        source = f"demo://faults?chunks={chunks}&seed=5&failure_rate=0&work_ms={work_ms}"
        queue = app.create_queue(source)
    found = PowerLoss()
    for _ in range(kills):
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child: a worker until the kill
            _work(url)
        time.sleep(rng.uniform(0.0, MAX_LIFE_S))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        found.kills += 1
        if found.kills % check_every == 0 or found.kills == kills:
            with App(url) as app:
                report = check_database(app.backend)
            found.checks += 1
            found.violations += _damage(report, f"after kill {found.kills}")
    found.loop_seconds = time.monotonic() - began
    with App(url) as app:
        totals = app.manager.get_queue(queue.id).totals
        found.done_before_drain = totals.get(ChunkStatus.COMPLETED, 0)
        app.worker(concurrency=3, poll_s=0.01, lease_s=1.0).run(
            until=lambda: app.manager.get_queue(queue.id).status in FINISHED
        )
        report = check_database(app.backend)
        found.violations += _damage(report, "after the drain")
        final = app.manager.get_queue(queue.id).totals
        found.by_status = {str(k.value): v for k, v in final.items() if v}
        found.dead_reasons = Counter(
            c.dead_reason or ""
            for c in app.manager.list_chunks(queue.id, status=ChunkStatus.DEAD, limit=chunks)
        )
    found.seconds = time.monotonic() - began
    return found


def _damage(report: CheckReport, when: str) -> list[str]:
    return [f"{when}: {f.line()}" for f in report.findings if f.severity == DAMAGE]


def _work(url: str) -> None:
    """The forked worker: runs until it is killed (it exits on its own only if it fails)."""
    try:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        with App(url) as app:
            app.worker(concurrency=3, poll_s=0.01, lease_s=1.0).run()
    finally:
        os._exit(0)
