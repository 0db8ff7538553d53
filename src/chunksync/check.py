"""`chunksync check`: is the database whole, and does every chunk keep the rules?

A worker trusts what it reads: a chunk marked processing without a lease is never recovered, a
chunk that finished without a finish time never leaves the retention's view. After a crash, a
full disk, a restored backup or a hand edit, this module says what is wrong, in sentences, and
what to do about it. It first asks the database to check itself (SQLite's `integrity_check` and
`foreign_key_check`; on PostgreSQL, indexes left invalid, without needing amcheck), then runs
the chunk invariants, each one named query of `queries_check.sql`:

    check_status        every chunk is in one of the five states
    check_leases        processing <=> a whole lease (token, expiry, worker), nothing else holds one
    check_finished      a final state <=> a finish time
    check_counters      no negative attempt, crash, deferral or stress count
    check_orphans       every chunk has its queue
    check_attempt_rows  attempts counted <= attempt rows that spent one (+ releases, a running one)
    check_queue_totals  each queue's count of its chunks is how many it holds
    check_claim_groups  PostgreSQL: every open chunk of a queue not paused is in the claim
                        group its dependency's limits call for, or a move of its chunks is
                        under way
    check_claim_group_moves  PostgreSQL: no chunk waits for a move that no mover has taken on
                        for ten minutes

`check_attempt_rows` is a note, not damage: retention removes old attempt rows, and a worker
killed between its claim and its report leaves an attempt counted that recovery then records.
`check_claim_group_moves` is a note too: the chunks wait, none is lost, and a worker that sees
every tenant goes on with the move. The rest are damage: `CheckReport.ok` is false and the
command exits 1.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from chunksync.backends.base import Backend
from chunksync.exceptions import BackendError
from chunksync.redact import redact

EXAMPLES_SHOWN = 5  # chunk ids quoted in a finding's sentence
DAMAGE = "damage"
NOTE = "note"

RESTORE_ADVICE = (
    "stop every worker, keep a copy of the database as it is now (on SQLite the file with its "
    "-wal and -shm files), then restore the latest backup; on SQLite, "
    "`sqlite3 FILE .recover | sqlite3 NEW.db` salvages what is still readable, and on PostgreSQL "
    "REINDEX rebuilds an invalid index; run `chunksync check` again on the result"
)


@dataclass(frozen=True, slots=True)
class Invariant:
    query: str
    severity: str
    says: str  # "{n} chunk(s) ..." completed with the count
    advice: str


INVARIANTS = (
    Invariant(
        "check_status",
        DAMAGE,
        "{n} chunk(s) have a status that is none of pending, processing, completed, dead, "
        "cancelled",
        "cancel each (`chunksync cancel ID`) or restore the database; then find what wrote them",
    ),
    Invariant(
        "check_leases",
        DAMAGE,
        "{n} chunk(s) are processing without a whole lease, or hold a lease while not processing",
        "put each back to pending with `chunksync release ID`; no worker will recover them alone",
    ),
    Invariant(
        "check_finished",
        DAMAGE,
        "{n} chunk(s) disagree with their finish time (final without one, or unfinished with one)",
        "run each again with `chunksync retry ID` (a dead one) or settle it with "
        "`chunksync cancel ID`",
    ),
    Invariant(
        "check_counters",
        DAMAGE,
        "{n} chunk(s) have a negative attempt, crash, deferral or stress count",
        "`chunksync retry ID` starts a dead one afresh; otherwise restore the database",
    ),
    Invariant(
        "check_orphans",
        DAMAGE,
        "{n} chunk(s) belong to a queue that no longer exists",
        "no worker will run them: restore the queue from a backup or delete these chunks",
    ),
    Invariant(
        "check_attempt_rows",
        NOTE,
        "{n} chunk(s) count more attempts than their attempt history records",
        "nothing to do if retention removed old attempt rows or a worker was killed mid-attempt "
        "(recovery counts that attempt); otherwise an attempt's history was lost",
    ),
    Invariant(
        "check_queue_totals",
        DAMAGE,
        "{n} queue(s) keep a count of their chunks that is not how many they hold, so their "
        "completed chunks are miscounted",
        "recount each (PostgreSQL: `UPDATE queues SET n_chunks = chunksync_count_queue_chunks(id) "
        "WHERE id = 'ID'`; SQLite: `UPDATE queues SET n_chunks = (SELECT COUNT(*) FROM chunks "
        "WHERE queue_id = queues.id) WHERE id = 'ID'`), then find what added or removed chunks "
        "past the triggers",
    ),
    Invariant(
        "check_claim_groups",
        DAMAGE,
        "{n} chunk(s) wait in a claim group their queue's status and their dependency's "
        "limits do not call for, and no move of its chunks is under way, so no claim takes them",
        "move each (`UPDATE chunks c SET claim_group = chunksync_queue_claim_group(q.status, "
        "q.id, q.dependency) FROM queues q WHERE q.id = c.queue_id AND c.id = 'ID'`), then find "
        "what wrote its group past `chunksync deps set`, `pause` and `resume`",
    ),
    Invariant(
        "check_claim_group_moves",
        NOTE,
        "{n} chunk(s) wait for a move to their claim group that no process has taken on for "
        "ten minutes, so no claim takes them yet",
        "start a worker that sees every tenant (its maintenance leader goes on with the move "
        "a minute after the last mover stopped); `chunksync deps` shows the dependency moving",
    ),
)


@dataclass(frozen=True, slots=True)
class Finding:
    check: str
    severity: str
    count: int
    sentence: str
    advice: str
    examples: tuple[str, ...] = ()

    def line(self) -> str:
        """The finding as one line a person reads: what is wrong, then what to do."""
        shown = f" (e.g. {', '.join(self.examples)})" if self.examples else ""
        return f"{self.severity}: {self.sentence}{shown}. What to do: {self.advice}."


@dataclass(frozen=True, slots=True)
class CheckReport:
    findings: tuple[Finding, ...]
    checked: tuple[str, ...]

    @property
    def ok(self) -> bool:
        """No damage (notes allowed)."""
        return not any(f.severity == DAMAGE for f in self.findings)

    @property
    def violations(self) -> int:
        return sum(f.count for f in self.findings if f.severity == DAMAGE)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "violations": self.violations,
            "checked": list(self.checked),
            "findings": [asdict(f) for f in self.findings],
        }


def unreadable(exc: BackendError) -> CheckReport:
    """The report on a database that cannot even be opened or read."""
    cause = exc.__cause__ or exc  # the driver's own words: this report gives the advice
    finding = Finding(
        "open", DAMAGE, 1, f"the database cannot be read ({redact(str(cause))})", RESTORE_ADVICE
    )
    return CheckReport((finding,), ("open",))


def check_database(backend: Backend, *, limit: int = 1000) -> CheckReport:
    """Every check, in order; a check that fails to run is itself damage, reported as such."""
    findings: list[Finding] = []
    checked: list[str] = []
    for query in ("check_integrity", "check_foreign_keys"):
        checked.append(query)
        try:
            problems = [str(r["problem"]) for r in backend.fetch_all(query)]
        except BackendError as exc:
            return CheckReport((*findings, *unreadable(exc).findings), tuple(checked))
        if problems:
            findings.append(_integrity_finding(query, problems))
    for invariant in INVARIANTS:
        checked.append(invariant.query)
        try:
            rows = backend.fetch_all(invariant.query, {"limit": limit})
        except BackendError as exc:
            findings.append(
                Finding(
                    invariant.query,
                    DAMAGE,
                    1,
                    f"the chunks could not be read ({redact(str(exc.__cause__ or exc))})",
                    RESTORE_ADVICE,
                )
            )
            break
        if rows:
            findings.append(_invariant_finding(invariant, rows))
    return CheckReport(tuple(findings), tuple(checked))


def _integrity_finding(query: str, problems: list[str]) -> Finding:
    what = "the database's own check" if query == "check_integrity" else "its foreign keys"
    first = "; ".join(problems[:3])
    return Finding(
        query,
        DAMAGE,
        len(problems),
        f"{what} found {len(problems)} problem(s): {first}",
        RESTORE_ADVICE,
    )


def _invariant_finding(invariant: Invariant, rows: list[dict[str, Any]]) -> Finding:
    n = int(rows[0]["n"])
    examples = tuple(f"{r['id']} ({r['status']})" for r in rows[:EXAMPLES_SHOWN])
    return Finding(
        invariant.query,
        invariant.severity,
        n,
        invariant.says.format(n=n),
        invariant.advice,
        examples,
    )
