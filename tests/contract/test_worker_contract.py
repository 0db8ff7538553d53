"""The worker's seven steps on every backend: real handlers, real failures, real database."""

from __future__ import annotations

import logging
import threading
import time
import urllib.error
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from chunksync.app import App
from chunksync.context import ChunkContext
from chunksync.exceptions import Abort, RetryLater
from chunksync.models import ChunkStatus, ErrorCategory, QueueStatus
from chunksync.observe import health
from chunksync.retry import RetryPolicy, StressConfig
from chunksync.runtime.worker import Worker
from chunksync.sources.demo import make_failure

FAST = {"poll_s": 0.05, "time_scale": 0.001, "lease_s": 5.0}


def attempts_of(app: App, chunk_id: str) -> list[dict[str, Any]]:
    return app.manager.list_attempts(chunk_id)


def wait_until(predicate: Any, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.01)


def test_every_chunk_completes_exactly_once(app: App) -> None:
    done: Counter[int] = Counter()
    lock = threading.Lock()

    @app.handler("count")
    def count(ctx: ChunkContext) -> int:
        with lock:
            done[ctx.payload["n"]] += 1
        return 1

    q = app.create_queue("count://x", [{"n": n} for n in range(300)])
    app.worker(concurrency=4, **FAST).run_until_done([q.id], timeout_s=60)
    assert app.manager.get_queue(q.id).status is QueueStatus.COMPLETED
    assert sorted(done) == list(range(300)) and set(done.values()) == {1}


def test_failures_follow_the_policy_per_category(app: App) -> None:
    # Each chunk's script: the category it fails with on each attempt, then success.
    scripts = {
        "flaky-network": ["network", "network", "ok"],
        "rate-limited": ["rate_limit", "ok"],
        "gone": ["not_found"],
        "forbidden": ["permission"],
        "dupe": ["data_conflict"],
        "bad-login": ["auth", "auth", "auth", "ok"],
        "broken": ["processing_error"] * 6,
    }

    @app.handler("script")
    def run(ctx: ChunkContext) -> int:
        step = ctx.payload["script"][min(ctx.attempt, len(ctx.payload["script"])) - 1]
        if step != "ok":
            raise make_failure(step)
        return 1

    payloads = [{"name": name, "script": s} for name, s in scripts.items()]
    # Category rules only: a budget too large for stress to engage in this short run.
    app.add_policy(RetryPolicy(name="no-stress", stress=StressConfig(capacity=1000.0)))
    q = app.create_queue("script://x", payloads, policy="no-stress")
    app.worker(concurrency=2, **FAST).run_until_done([q.id], timeout_s=60)
    chunks = {c.payload["name"]: c for c in app.manager.list_chunks(q.id)}
    assert chunks["flaky-network"].status is ChunkStatus.COMPLETED
    assert chunks["flaky-network"].attempts == 3
    assert chunks["rate-limited"].status is ChunkStatus.COMPLETED
    for name, reason in [
        ("gone", "not_found is never retried"),
        ("forbidden", "permission is never retried"),
        ("dupe", "data_conflict is never retried"),
        ("bad-login", "auth: out of retries after 3"),
        ("broken", "processing_error: out of retries after 5"),
    ]:
        assert chunks[name].status is ChunkStatus.DEAD, name
        assert chunks[name].dead_reason == reason
    # The failures here stress the budget, so the gate may hold a chunk: held rows are no calls.
    rows = [r for r in attempts_of(app, chunks["flaky-network"].id) if r["outcome"] != "held"]
    assert [(r["outcome"], r["category"]) for r in rows] == [
        ("retried", "network"),
        ("retried", "network"),
        ("completed", None),
    ]
    assert [r["retry_delay_s"] for r in rows[:2]] == [2.0, 4.0]  # the policy's delays
    limited = next(r for r in attempts_of(app, chunks["rate-limited"].id) if r["outcome"] != "held")
    assert limited["rule"] == "http_status:429" and limited["retry_delay_s"] == 5.0
    assert app.manager.get_queue(q.id).status is QueueStatus.FAILED


def test_health_metrics_of_each_attempt(app: App) -> None:
    app.handler("items")(lambda ctx: 250)
    q = app.create_queue("items://x", [{"size": 250}] * 8)
    w = app.worker(concurrency=1, **FAST)
    w.run_until_done([q.id], timeout_s=30)
    rows = [attempts_of(app, c.id)[0] for c in app.manager.list_chunks(q.id)]
    for r in rows:
        assert r["worker_id"] == w.id and r["attempt"] == 1 and r["outcome"] == "completed"
        assert r["chunk_size"] == 250 and r["items_processed"] == 250
        assert r["items_per_s"] > 0 and r["processing_s"] >= 0 and r["rss_bytes"] > 1_000_000
        assert r["finished_at"] >= r["started_at"]
    assert any(r["efficiency"] is not None for r in rows[5:])  # once the median has samples


def test_a_handler_past_its_timeout_is_categorized_timeout(app: App) -> None:
    release = threading.Event()

    @app.handler("slow")
    def slow(ctx: ChunkContext) -> int:
        if ctx.attempt == 1:
            release.wait(10)
        return 1

    q = app.create_queue("slow://x", [{}])
    app.worker(handler_timeout_s=0.2, **FAST).run_until_done([q.id], timeout_s=30)
    release.set()
    [chunk] = app.manager.list_chunks(q.id)
    rows = attempts_of(app, chunk.id)
    assert chunk.status is ChunkStatus.COMPLETED
    assert (rows[0]["outcome"], rows[0]["category"]) == ("retried", "timeout")
    assert "past its timeout" in rows[0]["message"]


def test_a_hung_handler_is_abandoned_and_its_batch_goes_on(app: App) -> None:
    """Quick chunks claimed in one batch with a handler that hangs: the hung chunk is timed
    out and retried, the rest of its batch is released and done, the slot is replaced."""
    release = threading.Event()
    runs: Counter[int] = Counter()

    @app.handler("mixed")
    def mixed(ctx: ChunkContext) -> int:
        n = ctx.payload["n"]
        runs[n] += 1
        if n == 3 and ctx.attempt == 1:
            release.wait(30)  # far past the timeout; released after the run
        return 1

    q = app.create_queue("mixed://x", [{"n": n} for n in range(40)])
    worker = app.worker(handler_timeout_s=0.3, concurrency=2, **FAST)
    try:
        worker.run_until_done([q.id], timeout_s=60)
    finally:
        release.set()
    chunks = app.manager.list_chunks(q.id)
    assert [c.status for c in chunks] == [ChunkStatus.COMPLETED] * 40
    for chunk in chunks:
        rows = attempts_of(app, chunk.id)
        assert [r["outcome"] for r in rows].count("completed") == 1, rows
        if chunk.payload["n"] == 3:
            assert (rows[0]["outcome"], rows[0]["category"]) == ("retried", "timeout")
            assert "past its timeout" in rows[0]["message"] and len(rows) == 2
    assert set(runs) == set(range(40)) and runs[3] == 2
    assert worker.processed >= 40


def test_a_batch_that_failed_fast_does_not_grow(app: App) -> None:
    """Chunks that fail at once (their dependency is down) are no sign of quick work: claims
    stay at one chunk, so that a worker that dies does not take a pile of them down with it
    (each found stuck, a step towards its crash loop). Quick successes do grow the batch."""
    limits: list[int] = []

    def recording(worker: Worker) -> Worker:
        """The worker, each claim's batch size noted (step 2, whichever way it claims: a gated
        dependency's chunks are claimed under its row, not by Manager.claim)."""
        claim = worker._step2_claim

        def recorded(batch: int, special: Any) -> Any:
            limits.append(batch)
            return claim(batch, special)  # the real claim

        worker._step2_claim = recorded  # type: ignore[method-assign]
        return worker

    @app.handler("down")
    def down(ctx: ChunkContext) -> int:
        raise ConnectionRefusedError("connection refused")

    @app.handler("up")
    def up(ctx: ChunkContext) -> int:
        return 1

    failing = app.create_queue("down://x", [{"n": n} for n in range(30)])
    recording(app.worker(concurrency=1, **FAST)).run_until_done([failing.id], timeout_s=60)
    statuses = {c.status for c in app.manager.list_chunks(failing.id)}
    assert statuses == {ChunkStatus.DEAD} and len(limits) >= 30
    assert max(limits) == 1, limits
    limits.clear()
    quick = app.create_queue("up://x", [{"n": n} for n in range(200)])
    recording(app.worker(concurrency=1, **FAST)).run_until_done([quick.id], timeout_s=60)
    assert app.manager.get_queue(quick.id).status is QueueStatus.COMPLETED
    assert max(limits) > 1, limits


def test_a_retry_resumes_from_its_checkpoint(app: App) -> None:
    seen: list[Any] = []

    @app.handler("resumable")
    def resumable(ctx: ChunkContext) -> int:
        seen.append(ctx.checkpoint)
        start = (ctx.checkpoint or {}).get("next", 0)
        for item in range(start, 10):
            if item == 6 and ctx.attempt == 1:
                raise ConnectionResetError(104, "Connection reset by peer")
            ctx.save_checkpoint({"next": item + 1}, items_processed=item + 1)
        return 10

    q = app.create_queue("resumable://x", [{}])
    app.worker(**FAST).run_until_done([q.id], timeout_s=30)
    [chunk] = app.manager.list_chunks(q.id)
    assert chunk.status is ChunkStatus.COMPLETED and seen == [None, {"next": 6}]


def test_control_exceptions_steer_the_decision(app: App) -> None:
    @app.handler("control")
    def control(ctx: ChunkContext) -> int:
        if ctx.payload["do"] == "abort":
            raise Abort("the account was deleted")
        if ctx.attempt == 1:
            raise RetryLater("server asked for a pause", delay_s=0.3)
        return 1

    q = app.create_queue("control://x", [{"do": "abort"}, {"do": "later"}])
    app.worker(poll_s=0.05, lease_s=5.0).run_until_done([q.id], timeout_s=30)
    aborted, later = app.manager.list_chunks(q.id)
    assert aborted.status is ChunkStatus.DEAD
    assert aborted.dead_reason == "aborted: the account was deleted"
    assert later.status is ChunkStatus.COMPLETED
    first, second = attempts_of(app, later.id)
    assert first["retry_delay_s"] >= 0.3 and first["category"] == "rate_limit"
    assert second["started_at"] - first["finished_at"] >= 0.29


def test_a_failure_worded_with_a_nul_or_a_lone_surrogate_is_recorded(app: App) -> None:
    # An OSError names an undecodable file as a lone surrogate; PostgreSQL refuses a NUL. Left
    # in the stored message, either made the result unwritable and the chunk ran again.
    @app.handler("odd")
    def odd(ctx: ChunkContext) -> None:
        if ctx.payload["do"] == "abort":
            raise Abort("bad name \udcff\x00")
        raise OSError("cannot open \udcff\x00.eml")

    q = app.create_queue("odd://x", [{"do": "abort"}, {"do": "fail"}])
    app.worker(**FAST).run_until_done([q.id], timeout_s=30)
    aborted, failed = app.manager.list_chunks(q.id)
    assert aborted.status is ChunkStatus.DEAD
    assert aborted.dead_reason == "aborted: bad name \\udcff\\x00"
    assert failed.status is ChunkStatus.DEAD and failed.attempts == failed.max_attempts
    assert failed.last_error == "OSError: cannot open \\udcff\\x00.eml"
    rows = attempts_of(app, failed.id)
    assert len(rows) == failed.max_attempts
    assert {r["message"] for r in rows} == {failed.last_error}


def test_stress_defers_without_spending_attempts(app: App) -> None:
    # The budget's limits are the queue's policy's [stress] table.
    # Its own probe interval (5 s x time_scale): the default 1.5 s would be 1.5 ms here, probes
    # too close for a loaded machine to keep to.
    small = StressConfig(capacity=4, max_deferrals=2, probe_interval_s=5.0)
    app.add_policy(RetryPolicy(name="small", stress=small))

    @app.handler("outage")
    def outage(ctx: ChunkContext) -> int:
        if ctx.payload["n"] < 6 and ctx.chunk.deferrals < 2:
            raise ConnectionRefusedError(111, "Connection refused")
        return 1

    q = app.create_queue("outage://api.example.com", [{"n": n} for n in range(8)], policy="small")
    app.worker(concurrency=1, **FAST).run_until_done([q.id], timeout_s=60)
    chunks = app.manager.list_chunks(q.id)
    rows = {c.id: attempts_of(app, c.id) for c in chunks}
    trail = {
        c.payload["n"]: (c.status, c.dead_reason, [r["outcome"] for r in rows[c.id]])
        for c in chunks
        if c.status is not ChunkStatus.COMPLETED
    }
    assert all(c.status is ChunkStatus.COMPLETED for c in chunks), trail
    outcomes = Counter(r["outcome"] for rs in rows.values() for r in rs)
    assert outcomes["deferred"] > 0 and outcomes["completed"] == 8
    for c in chunks:  # deferrals (and holds) did not spend attempts: only retries and the success
        assert c.attempts == sum(1 for r in rows[c.id] if r["outcome"] in ("retried", "completed"))


def test_a_dependency_in_outage_gets_probes_and_its_chunks_wait_not_fail(app: App) -> None:
    # Stressed below 2 of 4 tokens: after three refused calls the gate shuts; then only the
    # fleet's probes are claimed, the first 0.5 ms after it shut, each later one twice as late up
    # to 5 ms (x time_scale); the other chunks wait as pending rows (or, claimed before it shut,
    # are held). The outage ends after `outage_calls` calls; the next probe succeeds, reopens
    # the gate, and all complete.
    outage_calls = 8
    gated = RetryPolicy(
        name="gated", stress=StressConfig(capacity=4, max_deferrals=20, probe_interval_s=5.0)
    )
    app.add_policy(gated)
    calls: Counter[str] = Counter()
    lock = threading.Lock()

    @app.handler("down")
    def down(ctx: ChunkContext) -> int:
        with lock:
            calls["all"] += 1
            if calls["all"] <= outage_calls:
                raise ConnectionRefusedError(111, "Connection refused")
        return 1

    q = app.create_queue("down://api.example.com", [{"n": n} for n in range(30)], policy="gated")
    app.worker(concurrency=2, **FAST).run_until_done([q.id], timeout_s=60)
    chunks = app.manager.list_chunks(q.id)
    assert all(c.status is ChunkStatus.COMPLETED for c in chunks)
    assert calls["all"] == outage_calls + 30  # no call beyond the probes while it was down
    rows = {c.id: attempts_of(app, c.id) for c in chunks}
    outcomes = Counter(r["outcome"] for rs in rows.values() for r in rs)
    assert outcomes["completed"] == 30 and outcomes["dead"] == 0
    assert outcomes["retried"] + outcomes["deferred"] == outage_calls
    dependency = app.deps.get("down://api.example.com")
    assert dependency.probes >= 1  # the fleet's gate let them through
    for chunk in chunks:  # a hold gives its attempt back: only calls that failed or completed
        spent = sum(1 for r in rows[chunk.id] if r["outcome"] in ("retried", "completed"))
        assert chunk.attempts == spent
    held = [r for rs in rows.values() for r in rs if r["outcome"] == "held"]
    assert all(r["category"] is None and r["retry_delay_s"] >= 0.5 for r in held)
    summary = health.queue_summary(app.manager, q.id)
    assert summary.held == len(held)
    assert summary.failed_attempts == outage_calls  # holds are not failures


def test_graceful_stop_finishes_running_chunks(app: App) -> None:
    started, release = threading.Event(), threading.Event()

    @app.handler("finishing")
    def finishing(ctx: ChunkContext) -> int:
        started.set()
        release.wait(30)  # until the worker is stopping: no second chunk is claimed before
        return 1

    q = app.create_queue("finishing://x", [{}] * 3)
    w = app.worker(concurrency=1, **FAST)
    w.start()
    assert started.wait(10)
    stopper = threading.Thread(target=w.stop, kwargs={"grace_s": 30})
    stopper.start()
    wait_until(lambda: app.manager.get_worker(w.id).status.value == "stopping", 30)  # heartbeat
    release.set()
    stopper.join(30)
    chunks = app.manager.list_chunks(q.id)
    assert Counter(c.status for c in chunks) == {ChunkStatus.COMPLETED: 1, ChunkStatus.PENDING: 2}
    assert app.manager.get_worker(w.id).status.value == "stopped"


def test_a_slow_stop_says_what_it_waits_for(
    app: App, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stop still going after STOP_REPORT_SECONDS logs the step it waits in, the chunk a
    slot still runs and every thread's stack; a stop that ends sooner logs none of it."""
    monkeypatch.setattr("chunksync.runtime.watchdog.STOP_REPORT_SECONDS", 0.1)
    started, release = threading.Event(), threading.Event()

    @app.handler("slowtoend")
    def slow_to_end(ctx: ChunkContext) -> int:
        started.set()
        release.wait(30)
        return 1

    q = app.create_queue("slowtoend://x", [{}])
    [chunk] = app.manager.list_chunks(q.id)
    w = app.worker(concurrency=1, **FAST)
    w.start()
    assert started.wait(10)
    with caplog.at_level(logging.WARNING, logger="chunksync"):
        stopper = threading.Thread(target=w.stop, kwargs={"grace_s": 30})
        stopper.start()
        wait_until(lambda: "still stopping" in caplog.text, 10)
        release.set()
        stopper.join(30)
    [line] = [r.getMessage() for r in caplog.records if "still stopping" in r.getMessage()][:1]
    assert line.startswith(f"worker {w.id}: still stopping after ")
    assert f" s, waiting for slot {w.id}-slot" in line
    assert f"(chunk {chunk.id}, within the grace)" in line
    assert "in slow_to_end" in line and "release.wait(30)" in line  # the handler's own line
    assert app.manager.get_chunk(chunk.id).status is ChunkStatus.COMPLETED
    caplog.clear()
    quick = app.worker(concurrency=1, **FAST)
    quick.start()
    with caplog.at_level(logging.WARNING, logger="chunksync"):
        quick.stop()
        time.sleep(0.3)  # three report intervals after the stop ended
    assert "still stopping" not in caplog.text


def test_a_slow_claim_is_said_at_most_once_a_minute(
    app: App, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A plain claim slower than SLOW_CLAIM_SECONDS is logged with what may cause it, once per
    SLOW_CLAIM_LOG_SECONDS: here every claim counts as slow, and a run makes several."""
    monkeypatch.setattr("chunksync.runtime.claims.SLOW_CLAIM_SECONDS", 0.0)
    app.handler("noopslow")(lambda ctx: 1)
    q = app.create_queue("noopslow://x", [{}] * 5)
    with caplog.at_level(logging.WARNING, logger="chunksync"):
        app.worker(concurrency=1, **FAST).run_until_done([q.id], timeout_s=30)
    said = [r.getMessage() for r in caplog.records if "a claim took" in r.getMessage()]
    assert len(said) == 1, said
    assert "come before its own in the fair order" in said[0] and "docs/tenants.md" in said[0]


def test_graceful_stop_releases_what_cannot_finish_with_the_attempt_given_back(app: App) -> None:
    started, release = threading.Event(), threading.Event()

    @app.handler("stuck")
    def stuck(ctx: ChunkContext) -> int:
        started.set()
        release.wait(10)
        return 1

    q = app.create_queue("stuck://x", [{}])
    w = app.worker(concurrency=1, **FAST)
    w.start()
    assert started.wait(10)
    w.stop(grace_s=0.2)
    release.set()
    [chunk] = app.manager.list_chunks(q.id)
    assert chunk.status is ChunkStatus.PENDING and chunk.attempts == 0
    assert chunk.lease_token is None and chunk.worker_id is None


def test_planted_secrets_stay_out_of_the_database_and_logs(
    app: App, caplog: pytest.LogCaptureFixture
) -> None:
    password, token = "S3cr3t-P4ss!", "tok_ABCDEF123456"

    @app.handler("leaky")
    def leaky(ctx: ChunkContext) -> int:
        url = f"https://alice:{password}@api.example.com/v1?access_token={token}"
        raise urllib.error.URLError(f"cannot reach {url}: Authorization: Bearer {token}")

    q = app.create_queue(f"leaky://alice:{password}@api.example.com/x", [{}], max_attempts=2)
    with caplog.at_level(logging.DEBUG, logger="chunksync"):
        app.worker(**FAST).run_until_done([q.id], timeout_s=30)
    [chunk] = app.manager.list_chunks(q.id)
    assert chunk.status is ChunkStatus.DEAD and chunk.last_category is ErrorCategory.UNKNOWN
    dump = repr(app.manager.list_queues()) + repr(app.manager.list_chunks(q.id))
    dump += repr(attempts_of(app, chunk.id)) + repr(app.manager.list_audit())
    dump += caplog.text
    assert "api.example.com" in dump  # the messages are there ...
    assert password not in dump and token not in dump  # ... without the secrets
    if app.backend.dialect == "sqlite":  # and not in any byte of the files, WAL included
        path = app.url.removeprefix("sqlite:///")
        raw = b"".join(Path(path + s).read_bytes() for s in ("", "-wal") if Path(path + s).exists())
        assert b"api.example.com" in raw
        assert password.encode() not in raw and token.encode() not in raw


def test_a_worker_registers_once_the_database_is_back(app: App) -> None:
    # The database went away between the app's opening and the worker's start (a restart): the
    # worker waits and registers, rather than exiting.
    from chunksync.exceptions import BackendUnavailable

    register = app.manager.register_worker
    failures = [BackendUnavailable("server closed the connection unexpectedly")] * 2

    def flaky(*args: Any, **kwargs: Any) -> None:
        if failures:
            raise failures.pop()
        register(*args, **kwargs)

    app.manager.register_worker = flaky  # type: ignore[method-assign]
    app.handler("noop")(lambda ctx: 1)
    q = app.create_queue("noop://x", [{"n": n} for n in range(5)])
    worker = app.worker(concurrency=1, **FAST)
    worker.run_until_done([q.id], timeout_s=30)
    assert not failures and app.manager.get_queue(q.id).status is QueueStatus.COMPLETED
    assert app.manager.get_worker(worker.id).status == "stopped"


def test_the_heap_is_frozen_while_a_worker_runs_and_given_back_when_the_last_stops(
    sqlite_app: App,
) -> None:
    """What the process holds when its first worker starts is kept out of the collector's
    passes (runtime.heap) until its last worker stops; then a cycle that died meanwhile is
    collected, not kept for the life of the process."""
    import gc

    assert gc.get_freeze_count() == 0  # no worker of an earlier test still runs
    sqlite_app.handler("noop")(lambda ctx: None)
    first, second, third, never_started = (sqlite_app.worker(**FAST) for _ in range(4))
    first.start()
    assert gc.get_freeze_count() > 1000  # modules, the app: most of the process
    second.start()
    first.stop()
    assert gc.get_freeze_count() > 1000  # the second still runs
    second.stop()
    second.stop()  # a second stop gives nothing back twice
    assert gc.get_freeze_count() == 0
    third.start()
    never_started.stop()  # took no part: the running worker's heap stays frozen
    assert gc.get_freeze_count() > 1000
    third.stop()
    assert gc.get_freeze_count() == 0
