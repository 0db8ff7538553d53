"""The data behind every page and the JSON API, computed once for both."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from chunksync.app import App
from chunksync.deps import view as deps_view
from chunksync.models import Chunk
from chunksync.observe import alerts, health, listing, trends
from chunksync.redact import MASK, redact

CHART_WINDOW_SECONDS = 24 * 3600.0
CHART_BUCKET_SECONDS = 3600.0
FAILURE_BUCKET_SECONDS = 900.0
CHUNK_LIST_LIMIT = 200
QUEUE_PAGE_SIZE = 100  # queues in the overview's table and on each page of /queues


def overview(app: App) -> dict[str, Any]:
    system = health.system_summary(
        app.manager,
        app.settings.health,
        budgets=app.registry.budgets,
        dependency_of=app.registry.dependency_of,
    )
    queues, total = queue_page(app, QUEUE_PAGE_SIZE)
    throughput = sum(q["throughput_chunks_per_s"] or 0.0 for q in queues)
    return {
        "system": system.as_dict(),
        "throughput_chunks_per_s": throughput,  # of the queues listed
        "alerts": [alert_data(a) for a in alerts.firing(app.manager)],
        "workers": [w.as_dict() for w in trends.worker_trends(app.manager)],
        "queues": queues,
        "queues_total": total,
    }


def queue_page(app: App, limit: int, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
    """A page of the queues' summaries, newest first, read at once (p95 from the histograms),
    and how many queues there are in all."""
    queues, total = app.manager.queue_page(limit, offset)
    summaries = listing.queue_summaries(app.manager, queues)
    rows = [s.as_dict() | {"source": q.source} for q, s in zip(queues, summaries, strict=True)]
    return rows, total


QUEUE_CHOICES = 200  # queues a filter offers to choose from; past that, one is typed


def queue_choices(app: App) -> tuple[list[dict[str, str]], bool]:
    """The newest QUEUE_CHOICES queues' ids and names for a filter's choices, and whether there
    are more (then the filter takes a typed id or name: 50,000 queues were a 3.4 MB list, read
    with every queue's totals, 1.1 s a page)."""
    queues, total = app.manager.queue_page(QUEUE_CHOICES)
    return [{"queue_id": q.id, "name": q.name} for q in queues], total > QUEUE_CHOICES


PAGE_DEPENDENCIES = 50  # rows the dependencies page shows (its fragment is polled every 2 s)


def dependencies(app: App) -> list[dict[str, Any]]:
    """Every dependency in the shape of `chunksync deps --json` (names redacted), by name."""
    found = app.deps.all()
    now = app.manager.now()
    return [deps_view.shown(d, now) for d in found]


def dependencies_page(app: App) -> dict[str, Any]:
    """The dependencies page's rows: the gated and the busiest PAGE_DEPENDENCIES, and how many
    there are (5,000 accounts' caps were 1.7 MB of rows on each poll)."""
    found = app.deps.all()
    now = app.manager.now()
    first = deps_view.by_concern(found)[:PAGE_DEPENDENCIES]
    return {
        "dependencies": [deps_view.shown(d, now) for d in first],
        "dependencies_total": len(found),
    }


def charts_data(app: App) -> dict[str, Any]:
    now = app.manager.now()
    hourly = trends.hourly(app.manager, CHART_WINDOW_SECONDS)
    failures = trends.failures_over_time(
        app.manager, window_s=CHART_WINDOW_SECONDS / 4, bucket_s=FAILURE_BUCKET_SECONDS
    )
    by_hour = {float(h["hour"]): float(h["successes"]) for h in hourly}
    by_slot = {float(b["t"]): dict(b["failures"]) for b in failures}
    return {
        "hourly": hourly,
        "failures": failures,
        "hourly_series": [
            [t, by_hour.get(t, 0.0)]
            for t in _slots(now, CHART_WINDOW_SECONDS, CHART_BUCKET_SECONDS)
        ],
        "failure_series": [
            [t, by_slot.get(t, {})]
            for t in _slots(now, CHART_WINDOW_SECONDS / 4, FAILURE_BUCKET_SECONDS)
        ],
    }


def _slots(now: float, window_s: float, bucket_s: float) -> list[float]:
    """Every bucket start of the window, oldest first, so empty buckets show as gaps."""
    last = (now // bucket_s) * bucket_s
    count = int(window_s // bucket_s)
    return [last - bucket_s * i for i in range(count - 1, -1, -1)]


def alert_data(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "key": str(row["key"]),
        "rule": str(row["rule"]),
        "subject": None if row["subject"] is None else str(row["subject"]),
        "severity": str(row["severity"]),
        "state": str(row["state"]),
        "message": redact(str(row["message"])),
        "fired_at": float(row["fired_at"]),
        "resolved_at": None if row["resolved_at"] is None else float(row["resolved_at"]),
    }


def shown_payload(value: Any) -> Any:
    """A payload as the dashboard and the API show it: the same JSON, every text redacted and
    the value of every key that names a secret (password, token, api_key...) masked."""
    if isinstance(value, dict):
        return {
            k: MASK if _secret_key(str(k)) and value[k] is not None else shown_payload(value[k])
            for k in value
        }
    if isinstance(value, list):
        return [shown_payload(v) for v in value]
    if isinstance(value, str):
        return redact(value)
    return value


@lru_cache(maxsize=1024)
def _secret_key(key: str) -> bool:
    """Whether the redaction rules treat `key` as a secret's name (asked of them, so that the
    payload follows the very rules every other text does)."""
    probe = json.dumps({key: "x" * 12})
    return MASK in redact(probe)


def chunk_data(c: Chunk) -> dict[str, Any]:
    return {
        "id": c.id,
        "queue_id": c.queue_id,
        "tenant": c.tenant,
        "payload": shown_payload(c.payload),
        "seq": c.seq,
        "status": c.status.value,
        "attempts": c.attempts,
        "max_attempts": c.max_attempts,
        "last_category": None if c.last_category is None else c.last_category.value,
        "last_error": None if c.last_error is None else redact(c.last_error),
        "dead_reason": None if c.dead_reason is None else redact(c.dead_reason),
        "worker_id": c.worker_id,
        "items_processed": c.items_processed,
        "run_after": c.run_after,
        "created_at": c.created_at,
        "updated_at": c.updated_at,
    }


def chunk_detail(app: App, chunk_id: str) -> dict[str, Any]:
    chunk = app.manager.get_chunk(chunk_id)
    attempts = [
        {
            "attempt": int(a["attempt"]),
            "outcome": str(a["outcome"]),
            "category": a["category"],
            "rule": a["rule"],
            "retry_delay_s": None if a["retry_delay_s"] is None else float(a["retry_delay_s"]),
            "processing_s": float(a["processing_s"]),
            "worker_id": str(a["worker_id"]),
            "finished_at": float(a["finished_at"]),
            "message": None if a["message"] is None else redact(str(a["message"])),
        }
        for a in app.manager.list_attempts(chunk.id)
    ]
    audit = [
        {
            "at": e.at,
            "action": e.action,
            "actor": e.actor,
            "reason": redact(e.reason),
            "details": None if e.details is None else redact(json.dumps(e.details)),
        }
        for e in app.manager.list_audit(chunk_id=chunk.id)
    ]
    checkpoint = (
        None if chunk.checkpoint is None else redact(json.dumps(chunk.checkpoint, indent=2))
    )
    return {
        "chunk": chunk_data(chunk),
        "payload": json.dumps(shown_payload(chunk.payload), indent=2, ensure_ascii=False),
        "checkpoint": checkpoint,
        "attempts": attempts,
        "audit": audit,
    }
