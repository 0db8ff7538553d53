"""`chunksync demo`: plan a faulty sync, let the workers heal it, and report what happened."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter, defaultdict
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from chunksync.app import App
from chunksync.models import ChunkStatus, Outcome, Queue

GHOST_WORKER = "demo-ghost-worker"
REFRESH_SECONDS = 0.2


def simulate_dead_worker(app: App, queue: Queue, crashes: int, lease_s: float) -> int:
    """A worker claims `crashes` chunks and vanishes: no heartbeat, no result."""
    if crashes <= 0:
        return 0
    app.manager.register_worker(GHOST_WORKER, "nowhere", 0, 1)
    _, taken = app.manager.claim(
        GHOST_WORKER, app.kinds(), limit=crashes, lease_s=lease_s, queue_id=queue.id
    )
    return len(taken)


def run_demo(
    app: App,
    console: Console,
    *,
    chunks: int,
    failure_rate: float,
    seed: int,
    concurrency: int,
    time_scale: float,
    crashes: int,
) -> dict[str, Any]:
    uri = f"demo://faults?chunks={chunks}&failure_rate={failure_rate}&seed={seed}"
    queue = app.create_queue(uri, name=f"demo-{int(time.time())}")
    lease_s = max(0.5, 30.0 * time_scale)
    ghosts = simulate_dead_worker(app, queue, crashes, lease_s)
    console.print(
        f"[bold]chunksync demo[/]: {chunks} chunks, {failure_rate:.0%} of attempts fail "
        f"(seed {seed}); {concurrency} worker slots; retry delays x{time_scale:g} "
        f"(--time-scale); {ghosts} chunk(s) claimed by a worker that then died (simulated)."
    )
    worker = app.worker(
        concurrency=concurrency,
        lease_s=lease_s,
        poll_s=min(0.2, lease_s / 2),
        rng=random.Random(seed),
        time_scale=time_scale,
        worker_timeout_s=lease_s * 2,
        handler_timeout_s=max(1.0, 30.0 * time_scale),
    )
    started = time.monotonic()
    runner = threading.Thread(target=worker.run_until_done, args=([queue.id],), daemon=True)
    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as progress:
        task = progress.add_task("chunks finished", total=chunks)
        runner.start()
        while runner.is_alive():
            runner.join(REFRESH_SECONDS)
            q = app.manager.get_queue(queue.id)
            progress.update(task, completed=q.done)
        progress.update(task, completed=app.manager.get_queue(queue.id).done)
    elapsed = time.monotonic() - started
    return report(app, console, queue.id, elapsed, time_scale)


def report(
    app: App, console: Console, queue_id: str, elapsed_s: float, time_scale: float
) -> dict[str, Any]:
    """Per-category counts, retries and their delays, deferrals, dead chunks and why, recoveries."""
    q = app.manager.get_queue(queue_id)
    attempts = app.manager.backend.fetch_all("demo_attempts", {"queue_id": queue_id})
    failures: Counter[str] = Counter()
    outcomes: Counter[str] = Counter()
    delays: dict[str, list[float]] = defaultdict(list)
    for a in attempts:
        outcomes[a["outcome"]] += 1
        if a["outcome"] != Outcome.COMPLETED and a["category"]:
            failures[a["category"]] += 1
        if a["outcome"] == Outcome.RETRIED and a["retry_delay_s"] is not None:
            delays[a["category"]].append(float(a["retry_delay_s"]))
    table = Table(title="failures by category")
    deferred: Counter[str] = Counter(
        a["category"] for a in attempts if a["outcome"] == Outcome.DEFERRED
    )
    for col in ("category", "failed attempts", "retries", "deferrals", "retry delays (policy s)"):
        table.add_column(col, justify="right" if col != "category" else "left")
    for category, n in failures.most_common():
        d = delays.get(category, [])
        span = f"{min(d):.1f} .. {max(d):.1f} (avg {sum(d) / len(d):.1f})" if d else "-"
        table.add_row(category, str(n), str(len(d)), str(deferred[category]), span)
    console.print(table)
    dead_chunks = app.manager.list_chunks(queue_id, ChunkStatus.DEAD, limit=10**6)
    dead = Counter(c.dead_reason or "?" for c in dead_chunks)
    recoveries = [
        e
        for e in app.manager.list_audit(queue_id=queue_id, limit=10**6)
        if e.action == "recover_stuck"
    ]
    totals = {s.value: n for s, n in q.totals.items()}
    held = outcomes[Outcome.HELD]  # no call was made: not an attempt at the dependency
    console.print(
        f"queue [bold]{q.status}[/] in {elapsed_s:.1f} s: {totals.get('completed', 0)} completed, "
        f"{totals.get('dead', 0)} dead, {totals.get('cancelled', 0)} cancelled; "
        f"{len(attempts) - held} attempts, {outcomes[Outcome.RETRIED]} retries, "
        f"{outcomes[Outcome.DEFERRED]} deferrals (dependency stressed), "
        f"{held} held without a call (dependency stressed, attempt given back), "
        f"{len(recoveries)} stuck chunk(s) recovered from a dead worker."
    )
    for reason, n in dead.most_common():
        console.print(f"  dead: {n} x {reason}")
    console.print(
        f"Delays shown are the policy's; they ran {time_scale:g}x as long (--time-scale)."
    )
    return {
        "status": q.status.value,
        "totals": totals,
        "failures": dict(failures),
        "outcomes": dict(outcomes),
        "held": held,
        "dead": dict(dead),
        "recoveries": len(recoveries),
    }
