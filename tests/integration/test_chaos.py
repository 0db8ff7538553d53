"""The short form of `make chaos`: a few thousand chunks per backend, three worker processes,
workers killed and frozen, PostgreSQL restarted, the handler failing with every category, and
(when Dovecot is there) a thousand messages synced through the faulty proxy while it resets,
stalls and slows, and Dovecot kicks, limits and restarts, then watched while more are appended
and the connections reset and Dovecot restarts. Nothing may be lost or run twice
unexplained; every invariant of tests/chaos/checks.py holds; the store equals the server; the
chaos queue's tenant, held to 3 chunks in flight of the fleet's 6 slots, never goes above it
while its workers are killed."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.chaos.harness import ChaosConfig
from tests.chaos.mail import KINDS as MAIL_KINDS
from tests.chaos.run import lines, run_backend
from tests.servers import missing_server
from tests.servers.pgcluster import PG_BIN, available

CHUNKS = 1500
MESSAGES = 500
WATCH_APPENDS = 20  # then watched: appended while connections reset and Dovecot restarts
TIMEOUT_SECONDS = 320  # 260 before the watching sync, which takes up to a minute when loaded
WITH_DOVECOT = shutil.which("dovecot") is not None and os.geteuid() == 0


def short(backend: str) -> ChaosConfig:
    return ChaosConfig(
        backend=backend,
        chunks=CHUNKS,
        work_ms=25.0,
        fault_gap_s=(0.8, 2.0),
        # Faults for up to 125 s, then 75 s to heal: a fault every second or two aimed at the
        # mail path can keep its last chunk failing and deferred for as long as it goes on, and
        # its next try may then be 48 s away (a stressed retry's delay: 120 s doubled, x0.2).
        timeout_s=200.0,
        heal_s=75.0,
        imap_messages=MESSAGES if WITH_DOVECOT else 0,
        imap_chunk=25,
        imap_rate=30_000.0,  # ~5 s for the 500 messages: faults land on the mail path
        # Stress deferrals of 30, 60, 120 s would outlast the test: the mail queue's policy
        # runs with its delays x0.2 in the workers (its limits unchanged).
        mail_time_scale=0.2,
        watch_appends=WATCH_APPENDS if WITH_DOVECOT else 0,
    )


def assert_healed(backend: str, tmp_path: Path) -> None:
    said: list[str] = []
    outcome = run_backend(short(backend), tmp_path, said.append)
    report = "\n".join(said + lines([outcome]))
    v, r, m = outcome.verdict, outcome.result, outcome.mail_states
    # The no-op queue: nothing lost, nothing run twice unexplained, every invariant.
    assert v.lost == 0 and v.duplicated == 0 and v.ok, report
    assert outcome.duplicated == 0, report
    assert not r.timed_out and not r.worker_exits and not outcome.tracebacks, report
    assert all(code == 0 for code in r.stop_codes), report
    assert v.chunks == CHUNKS and sum(v.by_status.values()) == CHUNKS, report
    # The chaos queue's dependency is capped (4 connections, 6 slots in the fleet): the cap held
    # while workers were killed and frozen and the server restarted (v.ok counts violations).
    assert v.cap_violations == 0 and 0 < v.most_at_once <= 4, report
    # Its tenant is held to 3 in flight: full while workers were killed, never above it.
    assert v.quota_violations == 0 and max(r.tenant_in_flight) == 3, report
    assert v.most_at_once <= 3 and r.kills_at_full_quota > 0, report
    expected = {"kill_worker", "pause_worker"} | (
        {"pg_restart"} if backend == "postgres" else set()
    )
    assert {f.kind for f in r.faults} >= expected, report
    assert outcome.recoveries > 0, report  # the kills and freezes were healed, not dodged
    assert set(v.failures_by_category) >= {"network", "timeout", "rate_limit"}, report
    if WITH_DOVECOT:
        assert r.mail is not None and m is not None and m.ok, report
        assert {f.kind for f in r.faults} & set(MAIL_KINDS), report
        assert r.mail.duplicated == 0 and r.mail.altered == 0, report  # byte-exact, once
        assert r.mail.lost == 0 and m.by_status.get("dead", 0) == 0, report
        assert r.mail.server == MESSAGES, report
        w = r.watch  # the watching sync: nothing missed, nothing twice, all signed
        assert w is not None and w.ok and w.appended == WATCH_APPENDS, report
        assert w.announced == WATCH_APPENDS and w.faults, report


@pytest.mark.slow
@pytest.mark.timeout(TIMEOUT_SECONDS)
def test_chaos_sqlite(tmp_path: Path) -> None:
    assert_healed("sqlite", tmp_path)


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.timeout(TIMEOUT_SECONDS)
def test_chaos_postgres(tmp_path: Path) -> None:
    if not available():
        missing_server(f"PostgreSQL 15 is not installed ({PG_BIN}): run scripts/test-servers.sh")
    assert_healed("postgres", tmp_path)
