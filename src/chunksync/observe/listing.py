"""Many queues' summaries at once: the dashboard's queue table and overview, `/api/queues`.

One summary per queue (chunksync.observe.health.queue_summary) runs five or six statements, and
its exact percentile reads the queue's raw attempts: 100 queues took 0.3 s, a page that
refreshes every few seconds. A list is four statements whatever the number of queues: the
listed queues' attempts and histograms from the all-time rollups, their chunks' figures, and the
throughput window's completions, each grouped by queue. The figures are the single summary's,
with one difference, stated where the list is shown: its p95 is always read from the all-time
histogram (within one bin, 15%, of the exact value), where a single summary gives the exact
value up to rollups.EXACT_PERCENTILE_MAX_ATTEMPTS timed attempts.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from chunksync.manager import Manager
from chunksync.models import Outcome, Queue
from chunksync.observe import rollups
from chunksync.observe.model import THROUGHPUT_WINDOW_SECONDS, QueueSummary
from chunksync.observe.readers import AttemptTally, summary_of


def queue_summaries(manager: Manager, queues: Sequence[Queue]) -> list[QueueSummary]:
    """The summaries of `queues` (rows with their totals, as list_queues gives them), in order."""
    if not queues:
        return []
    backend = manager.backend
    ids = {"queue_ids": backend.list_param([q.id for q in queues])}
    tallies: dict[str, AttemptTally] = defaultdict(AttemptTally)
    for r in backend.fetch_all("health_queues_attempts", ids):
        tallies[str(r["queue_id"])].add(r)
    bins: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for r in backend.fetch_all("health_queues_latency", ids):
        bins[str(r["queue_id"])].append((int(r["bin"]), int(r["n"])))
    recent: dict[str, int] = defaultdict(int)
    window = {"window_s": THROUGHPUT_WINDOW_SECONDS}
    for r in backend.fetch_all("health_window_by_queue", window):
        if r["outcome"] == Outcome.COMPLETED:
            recent[str(r["queue_id"])] += int(r["n"])
    chunks: dict[str, dict[str, Any]] = {
        str(r["queue_id"]): dict(r) for r in backend.fetch_all("health_queues_chunks", ids)
    }
    out = []
    for q in queues:
        tally = tallies[q.id]
        started = {"first_started_at": tally.first_started_at, "recent_completed": recent[q.id]}
        row = chunks[q.id] | started
        p95 = rollups.percentile_from_bins(bins[q.id], 0.95) if tally.timed_n else None
        out.append(summary_of(q, tally, row, p95))
    return out
