"""Run the chaos harness on one backend and summarise it as name=value lines."""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from chunksync.retry import DEFAULT_POLICY
from tests.chaos.app import chaos_policy
from tests.chaos.checks import Verdict, check, takeover_figures
from tests.chaos.harness import ChaosConfig, ChaosRun, RestartablePg, RunResult
from tests.chaos.watching import WatchVerdict


@dataclass(frozen=True, slots=True)
class Outcome:
    result: RunResult
    verdict: Verdict  # the no-op queue
    mail_states: Verdict | None = None  # the mail queue's chunks (its messages: result.mail)

    @property
    def lost(self) -> int:
        m, w = self.result.mail, self.result.watch
        return (
            self.verdict.lost
            + (self.mail_states.lost if self.mail_states else 0)
            + (m.lost + m.altered if m else 0)
            + (w.store.lost + w.store.altered + w.missed if w else 0)
        )

    @property
    def duplicated(self) -> int:
        m, w = self.result.mail, self.result.watch
        states = self.mail_states.duplicated if self.mail_states else 0
        watched = w.store.duplicated + w.twice if w else 0
        return self.verdict.duplicated + states + (m.duplicated if m else 0) + watched

    @property
    def recoveries(self) -> int:
        return self.verdict.recoveries + (self.mail_states.recoveries if self.mail_states else 0)

    @property
    def tracebacks(self) -> list[str]:
        """Worker logs holding a traceback: a failure must be one logged line, never that."""
        return [
            p.name for p in self.result.worker_logs if p.exists() and b"Traceback" in p.read_bytes()
        ]

    @property
    def ok(self) -> bool:
        r = self.result
        verdicts = [self.verdict, *([self.mail_states] if self.mail_states else [])]
        return (
            all(v.ok for v in verdicts)
            and not self.lost
            and not self.duplicated
            and not r.timed_out
            and not r.worker_exits
            and all(code == 0 for code in r.stop_codes)
            and not self.tracebacks
            and (r.watch is None or r.watch.ok)
        )

    def summary(self) -> dict[str, Any]:
        r, v, m = self.result, self.verdict, self.mail_states
        takeovers = v.takeover_s + (m.takeover_s if m else [])
        median, worst = takeover_figures(takeovers)
        mail = r.mail
        return {
            "backend": r.config.backend,
            "chunks": v.chunks,
            "seconds": round(r.finished_at - r.started_at, 1),
            "statuses": dict(v.by_status),
            "attempts": dict(v.attempts_by_outcome),
            "failures_by_category": dict(v.failures_by_category),
            "faults": dict(Counter(f.kind for f in r.faults)),
            "recoveries": self.recoveries,
            "lost_lease_attempts": v.lost_lease_attempts + (m.lost_lease_attempts if m else 0),
            "reexecuted": v.reexecuted,
            "lost": self.lost,
            "duplicated": self.duplicated,
            "stale_finalizes": v.stale_finalizes + (m.stale_finalizes if m else 0),
            "recoveries_unaudited": v.recoveries_unaudited + (m.recoveries_unaudited if m else 0),
            "dead_wrong_reason": v.dead_wrong_reason + (m.dead_wrong_reason if m else 0),
            "connections": r.config.connections,
            "most_at_once": v.most_at_once,
            "cap_violations": v.cap_violations,
            "tenant_quota": r.config.tenant_quota,
            "tenant_in_flight_max": max(r.tenant_in_flight, default=0),
            "tenant_quota_full_share": round(
                sum(n == r.config.tenant_quota for n in r.tenant_in_flight)
                / max(1, len(r.tenant_in_flight)),
                2,
            ),
            "kills_at_full_quota": r.kills_at_full_quota,
            "quota_violations": v.quota_violations,
            "mail_messages_on_server": mail.server if mail else None,
            "mail_messages_stored": mail.stored if mail else None,
            "mail_lost": mail.lost if mail else None,
            "mail_duplicated": mail.duplicated if mail else None,
            "mail_altered": mail.altered if mail else None,
            "mail_chunks": dict(m.by_status) if m else None,
            "mail_dead_reasons": dict(m.dead_reasons) if m else None,
            "mail_attempts": dict(m.attempts_by_outcome) if m else None,
            "mail_failures_by_category": dict(m.failures_by_category) if m else None,
            "proxy": r.proxy_counts or None,
            "watch": None if r.watch is None else watch_summary(r.watch),
            "worker_exits": len(r.worker_exits),
            "workers_started": len(r.worker_logs),
            "stop_codes": sorted({str(code) for code in r.stop_codes}),
            "worker_logs_with_traceback": self.tracebacks,
            "timed_out": r.timed_out,
            "healed_s": healed_s(r),
            "takeover_median_s": None if median is None else round(median, 2),
            "takeover_max_s": None if worst is None else round(worst, 2),
            "takeovers_measured": len(takeovers),
            "problems": v.problems + (m.problems if m else []) + r.worker_exits,
        }


def healed_s(r: RunResult) -> float | None:
    """Seconds from the last fault to the queues' end, when the faults had stopped first (the
    heal window) and the run did end; else None."""
    if not r.faults_stopped or r.timed_out or not r.faults:
        return None
    return round(r.finished_at - r.faults[-1].at, 1)


def watch_summary(w: WatchVerdict) -> dict[str, Any]:
    return {
        "appended": w.appended,
        "announced": w.announced,
        "missed": w.missed,
        "twice": w.twice,
        "lost": w.store.lost,
        "duplicated": w.store.duplicated,
        "unsigned": w.unsigned,
        "faults": len(w.faults),
        "reconnects": w.reconnects,
    }


@contextlib.contextmanager
def database(backend: str, workdir: Path) -> Iterator[tuple[str, RestartablePg | None]]:
    """A fresh database: a SQLite file, or a durable PostgreSQL cluster of the run's own."""
    if backend == "sqlite":
        yield f"sqlite:///{workdir / 'chaos.db'}", None
        return
    pg = RestartablePg()
    pg.start()
    try:
        yield pg.create_database("chaos"), pg
    finally:
        pg.stop()


def run_backend(
    config: ChaosConfig, workdir: Path | None = None, say: Callable[[str], None] = print
) -> Outcome:
    with contextlib.ExitStack() as stack:
        if workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="chaos-")))
        workdir.mkdir(parents=True, exist_ok=True)
        url, pg = stack.enter_context(database(config.backend, workdir))
        say(f"chaos on {config.backend}: {config.chunks} chunks, {config.workers} workers")
        began = time.monotonic()
        result = ChaosRun(config, url, workdir, pg=pg, say=say).run()
        verdict = check(result, chaos_policy())
        states = None
        if result.mail_queue_id is not None:
            states = check(result, DEFAULT_POLICY, queue_id=result.mail_queue_id, ledger=False)
        say(f"  drained and checked in {time.monotonic() - began:.0f} s")
        return Outcome(result, verdict, states)
    raise AssertionError("unreachable")


def lines(outcomes: list[Outcome]) -> list[str]:
    """The closing name=value lines, per backend and in total."""
    out: list[str] = []
    for o in outcomes:
        s = o.summary()
        b = s["backend"]
        out.append(f"chaos_{b}_chunks={s['chunks']} chaos_{b}_seconds={s['seconds']}")
        out.append(f"chaos_{b}_statuses={s['statuses']}")
        out.append(f"chaos_{b}_attempts={s['attempts']}")
        out.append(f"chaos_{b}_faults={s['faults']}")
        if s["mail_messages_on_server"] is not None:
            out.append(
                f"chaos_{b}_mail_server={s['mail_messages_on_server']} "
                f"chaos_{b}_mail_stored={s['mail_messages_stored']} "
                f"chaos_{b}_mail_lost={s['mail_lost']} "
                f"chaos_{b}_mail_duplicated={s['mail_duplicated']} "
                f"chaos_{b}_mail_altered={s['mail_altered']}"
            )
            out.append(f"chaos_{b}_mail_chunks={s['mail_chunks']} proxy={s['proxy']}")
            if s["mail_dead_reasons"]:
                out.append(f"chaos_{b}_mail_dead_reasons={s['mail_dead_reasons']}")
            out.append(f"chaos_{b}_mail_attempts={s['mail_attempts']}")
        if s["watch"] is not None:
            out.append(" ".join(f"chaos_{b}_watch_{k}={v}" for k, v in s["watch"].items()))
        out.append(
            f"chaos_{b}_recoveries={s['recoveries']} "
            f"chaos_{b}_lost_lease={s['lost_lease_attempts']} "
            f"chaos_{b}_reexecuted={s['reexecuted']}"
        )
        out.append(
            f"chaos_{b}_takeover_median_s={s['takeover_median_s']} "
            f"chaos_{b}_takeover_max_s={s['takeover_max_s']} (n={s['takeovers_measured']})"
        )
        out.append(
            f"chaos_{b}_stale_finalizes={s['stale_finalizes']} "
            f"chaos_{b}_recoveries_unaudited={s['recoveries_unaudited']} "
            f"chaos_{b}_dead_wrong_reason={s['dead_wrong_reason']} "
            f"chaos_{b}_worker_exits={s['worker_exits']} chaos_{b}_timed_out={s['timed_out']} "
            f"chaos_{b}_healed_after_faults_s={s['healed_s']} "
            f"chaos_{b}_stop_codes={','.join(s['stop_codes'])} "
            f"chaos_{b}_tracebacks={len(s['worker_logs_with_traceback'])}"
        )
        if s["connections"] is not None:
            out.append(
                f"chaos_{b}_connections={s['connections']} "
                f"chaos_{b}_most_at_once={s['most_at_once']} "
                f"chaos_{b}_cap_violations={s['cap_violations']}"
            )
        if s["tenant_quota"] is not None:
            out.append(
                f"chaos_{b}_tenant_quota={s['tenant_quota']} "
                f"chaos_{b}_tenant_in_flight_max={s['tenant_in_flight_max']} "
                f"chaos_{b}_tenant_quota_full_share={s['tenant_quota_full_share']} "
                f"chaos_{b}_kills_at_full_quota={s['kills_at_full_quota']} "
                f"chaos_{b}_quota_violations={s['quota_violations']}"
            )
        out.extend(f"  problem: {p}" for p in s["problems"])
    faults = sum(len(o.result.faults) for o in outcomes)
    out.append(f"chaos_faults_injected={faults}")
    out.append(f"chaos_recoveries={sum(o.recoveries for o in outcomes)}")
    out.append(f"chaos_lost={sum(o.lost for o in outcomes)}")
    out.append(f"chaos_duplicated={sum(o.duplicated for o in outcomes)}")
    return out


def scaled(config: ChaosConfig, **changes: Any) -> ChaosConfig:
    return replace(config, **changes)
