"""What a chaos run must have left: read the database and the effects ledger, count violations.

- every chunk terminal (else: lost);
- a completed chunk has exactly one `completed` attempt row, on its last attempt (a finalize by a
  stale lease would sit on an earlier one), and exactly one side effect from that attempt
  (none: lost; more: duplicated);
- any other side effect is a re-execution only if its attempt was interrupted: its worker was
  SIGKILLed, or its attempt row says `stuck` (recovered) or `lost_lease` (its result refused).
  Anything else is an unexplained effect, counted as duplicated;
- a `lost_lease` attempt is never the one that completed its chunk;
- every `stuck` attempt row has its `recover_stuck` audit entry (same chunk, worker, attempt);
- every dead chunk is dead for a reason its category allows under the queue's policy;
- with a connection cap on the chaos queue's dependency or an in-flight quota on its tenant,
  never more calls at once than the lower of the two (the calls file: each call's start and
  end); and the tenant's chunks in flight, sampled from the database while the run drives,
  never above its quota. Calls of an interrupted attempt (`stuck`,
  `lost_lease`) are left out: a frozen process wakes inside a call whose lease is gone, which
  no lease can fence; a killed worker's last call writes no line, and its permit is held until
  its lease is recovered.
"""

from __future__ import annotations

import json
import sqlite3
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from chunksync.backends.sqlite import path_from_url
from chunksync.models import ErrorCategory
from chunksync.retry import RetryPolicy
from tests.chaos.harness import RunResult, worker_pid

INTERRUPTED = frozenset({"stuck", "lost_lease"})


@dataclass(slots=True)
class Verdict:
    chunks: int = 0
    by_status: Counter[str] = field(default_factory=Counter)
    attempts_by_outcome: Counter[str] = field(default_factory=Counter)
    failures_by_category: Counter[str] = field(default_factory=Counter)
    lost: int = 0
    duplicated: int = 0
    reexecuted: int = 0  # interrupted attempts whose effect happened before the interruption
    recoveries: int = 0
    recoveries_unaudited: int = 0
    lost_lease_attempts: int = 0
    stale_finalizes: int = 0
    dead_wrong_reason: int = 0
    dead_reasons: Counter[str] = field(default_factory=Counter)  # "category / reason"
    cap_violations: int = 0  # times the calls at once went from the limit to above it
    quota_violations: int = 0  # samples of the tenant's chunks in flight above its quota
    most_at_once: int = 0
    takeover_s: list[float] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (
            self.lost
            or self.duplicated
            or self.recoveries_unaudited
            or self.stale_finalizes
            or self.dead_wrong_reason
            or self.cap_violations
            or self.quota_violations
        )

    def problem(self, text: str) -> None:
        if len(self.problems) < 20:
            self.problems.append(text)


def fetch(url: str, statement: str, *params: Any) -> list[dict[str, Any]]:
    """Rows straight from the database, read-only, without chunksync in between."""
    if url.startswith("sqlite:"):
        conn = sqlite3.connect(f"file:{path_from_url(url)}?mode=ro", uri=True)
        try:
            cursor = conn.execute(statement.replace("%s", "?"), params)
            names = [d[0] for d in cursor.description or ()]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        finally:
            conn.close()
    import psycopg
    from psycopg.rows import dict_row

    with psycopg.connect(url, autocommit=True, row_factory=dict_row) as pg:
        return list(pg.execute(statement.encode(), params or None).fetchall())


def _details(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    return dict(json.loads(value)) if value else {}


def dead_reason_allowed(
    policy: RetryPolicy, category: str | None, reason: str, attempts: int, max_attempts: int
) -> bool:
    if category is None:
        return False
    rule = policy.rule(ErrorCategory(category))
    if reason == "crash_loop":
        return category == ErrorCategory.TIMEOUT
    if reason == "stuck: out of attempts":
        return category == ErrorCategory.TIMEOUT and not rule.allows(attempts, max_attempts)
    if reason.endswith("is never retried"):
        return not rule.retry
    if ": out of retries after" in reason:
        return not rule.allows(attempts, max_attempts)
    return False


def unfinished(chunk: dict[str, Any], rows: list[dict[str, Any]], result: RunResult) -> str:
    """What a chunk left unfinished had been through: its attempt rows' outcomes in order, its
    deferrals, and when it was next due against the run's end (a timed-out run says why)."""
    outcomes = ", ".join(f"{a['outcome']}({a['category']})" for a in rows) or "no attempt rows"
    due = float(chunk["run_after"]) - result.finished_at
    return (
        f"attempt {chunk['attempts']} of {chunk['max_attempts']}, "
        f"{chunk['deferrals']} deferrals, last {chunk['last_category']}, "
        f"due {abs(due):.1f} s {'before' if due < 0 else 'after'} the run ended; "
        f"attempts: {outcomes}"
    )


def check(
    result: RunResult, policy: RetryPolicy, *, queue_id: str | None = None, ledger: bool = True
) -> Verdict:
    """The verdict on one queue; `ledger`: it is the no-op queue, whose handler records its side
    effects in the effects file (the mail queue's effects are checked against the server)."""
    v = Verdict()
    q = queue_id or result.queue_id
    chunks = fetch(
        result.url,
        "SELECT id, status, attempts, max_attempts, last_category, dead_reason, run_after, "
        "deferrals FROM chunks WHERE queue_id = %s",
        q,
    )
    attempts = fetch(
        result.url,
        "SELECT chunk_id, worker_id, attempt, outcome, category FROM attempts WHERE queue_id = %s "
        "ORDER BY id",
        q,
    )
    audit = fetch(
        result.url,
        "SELECT action, at, chunk_id, details FROM audit_log WHERE queue_id = %s",
        q,
    )
    effects: Counter[tuple[str, str, int]] = Counter()
    if ledger and result.effects.exists():
        for line in result.effects.read_text(encoding="utf-8").splitlines():
            chunk_id, worker_id, attempt = line.split()
            effects[(chunk_id, worker_id, int(attempt))] += 1

    v.chunks = len(chunks)
    if not result.url.startswith("sqlite:"):  # PostgreSQL keeps a queue's count (0022)
        kept = fetch(result.url, "SELECT n_chunks FROM queues WHERE id = %s", q)
        if kept and kept[0]["n_chunks"] != v.chunks:
            v.problem(f"the queue counts {kept[0]['n_chunks']} chunks and holds {v.chunks}")
    if ledger and v.chunks != result.config.chunks:
        v.lost += abs(result.config.chunks - v.chunks)
        v.problem(f"{v.chunks} chunks in the queue, {result.config.chunks} planned")
    rows_of: dict[str, list[dict[str, Any]]] = defaultdict(list)
    outcomes_of: dict[tuple[str, str, int], set[str]] = defaultdict(set)
    for a in attempts:
        key = (str(a["chunk_id"]), str(a["worker_id"]), int(a["attempt"]))
        rows_of[key[0]].append(a)
        outcomes_of[key].add(str(a["outcome"]))
        v.attempts_by_outcome[str(a["outcome"])] += 1
        if a["category"] is not None and a["outcome"] not in ("completed", "held"):
            v.failures_by_category[str(a["category"])] += 1

    completing: dict[str, tuple[str, str, int]] = {}
    for c in chunks:
        cid, status = str(c["id"]), str(c["status"])
        v.by_status[status] += 1
        if status not in ("completed", "dead", "cancelled"):
            v.lost += 1
            v.problem(f"chunk {cid} ended {status}: {unfinished(c, rows_of[cid], result)}")
            continue
        done = [a for a in rows_of[cid] if a["outcome"] == "completed"]
        if status == "completed":
            if len(done) != 1:
                if done:
                    v.duplicated += len(done) - 1
                else:
                    v.lost += 1
                v.problem(f"chunk {cid} completed with {len(done)} completed attempt rows")
                if not done:
                    continue
            row = done[0]
            key = (cid, str(row["worker_id"]), int(row["attempt"]))
            completing[cid] = key
            if key[2] != int(c["attempts"]):
                v.stale_finalizes += 1
                v.problem(f"chunk {cid} completed by attempt {key[2]} of {c['attempts']}")
            n = effects.get(key, 0)
            if not ledger:
                pass
            elif n == 0:
                v.lost += 1
                v.problem(f"chunk {cid} completed by {key[1]} but its effect is missing")
            elif n > 1:
                v.duplicated += n - 1
                v.problem(f"chunk {cid}: the completing attempt's effect recorded {n} times")
        elif done:
            v.stale_finalizes += 1
            v.problem(f"chunk {cid} is {status} but has a completed attempt row")
        if status == "dead":
            v.dead_reasons[f"{c['last_category']} / {c['dead_reason']}"] += 1
        if status == "dead" and not dead_reason_allowed(
            policy,
            c["last_category"],
            str(c["dead_reason"] or ""),
            int(c["attempts"]),
            int(c["max_attempts"]),
        ):
            v.dead_wrong_reason += 1
            v.problem(f"chunk {cid} dead: {c['last_category']} / {c['dead_reason']}")

    killed = result.killed_pids
    for key, n in effects.items():
        if completing.get(key[0]) == key:
            continue
        if outcomes_of.get(key, set()) & INTERRUPTED or worker_pid(key[1]) in killed:
            v.reexecuted += n
        else:
            v.duplicated += n
            v.problem(f"unexplained side effect {key} ({sorted(outcomes_of.get(key, ()))})")

    for key, outcomes in outcomes_of.items():
        if "lost_lease" in outcomes:
            v.lost_lease_attempts += 1
            if completing.get(key[0]) == key:
                v.stale_finalizes += 1
                v.problem(f"lost-lease attempt {key} completed its chunk")

    recovered: Counter[tuple[str, str, int]] = Counter()
    kills = {f.pid: f.at for f in result.faults if f.pid is not None}
    for entry in audit:
        if entry["action"] != "recover_stuck":
            continue
        d = _details(entry["details"])
        recovered[(str(entry["chunk_id"]), str(d.get("previous_worker")), int(d["attempts"]))] += 1
        killed_at = kills.get(worker_pid(str(d.get("previous_worker"))) or -1)
        if killed_at is not None and float(entry["at"]) >= killed_at:  # not from a pause before
            v.takeover_s.append(float(entry["at"]) - killed_at)
    v.recoveries = sum(recovered.values())
    for key, outcomes in outcomes_of.items():
        if "stuck" in outcomes and not recovered.get(key):
            v.recoveries_unaudited += 1
            v.problem(f"stuck attempt {key} has no recover_stuck audit entry")
    limits = [n for n in (result.config.connections, result.config.tenant_quota) if n]
    if ledger and limits:
        calls = result.effects.parent / "calls.log"
        lines = calls.read_text(encoding="utf-8").splitlines() if calls.exists() else []
        v.most_at_once, v.cap_violations = at_once(lines, outcomes_of, min(limits))
        if v.cap_violations:
            v.problem(f"{v.cap_violations} time(s) above the limit of {min(limits)}")
    quota = result.config.tenant_quota
    if ledger and quota is not None:
        v.quota_violations = sum(n > quota for n in result.tenant_in_flight)
        if v.quota_violations:
            v.problem(f"the tenant's chunks in flight went above its quota of {quota}")
    return v


def at_once(
    lines: list[str], outcomes_of: dict[tuple[str, str, int], set[str]], cap: int
) -> tuple[int, int]:
    """The most calls running at once, and how often they went from `cap` to above it."""
    events: list[tuple[float, int]] = []
    for line in lines:
        chunk_id, worker_id, attempt, start, end = line.split()
        if outcomes_of.get((chunk_id, worker_id, int(attempt)), set()) & INTERRUPTED:
            continue
        events += [(float(start), 1), (float(end), -1)]
    running = most = above = 0
    for _, step in sorted(events):  # an end before a start at the same instant
        running += step
        above += step > 0 and running == cap + 1
        most = max(most, running)
    return most, above


def takeover_figures(seconds: list[float]) -> tuple[float | None, float | None]:
    if not seconds:
        return None, None
    return statistics.median(seconds), max(seconds)
