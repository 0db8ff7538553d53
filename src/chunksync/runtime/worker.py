"""The worker: slots (threads) that run the seven-step loop, a heartbeat, and a graceful stop.

Each slot loops over the seven steps, each a method named for it:

1. `_step1_precheck`: before a claim, leave out the queues of dependencies whose gate is shut,
   and claim a single chunk (the probe) when one's probe is due;
2. `_step2_claim`: lease the next runnable chunk(s);
3. `_step3_process`: run the source's handler under a timeout; its pre-condition,
   `_step3_gate`, holds a chunk whose dependency is stressed (the half-open gate of
   chunksync.retry): back to pending, attempt given back, no call, not a failure;
4. `_step4_analyze`: categorize a failure;
5. `_step5_log`: measure the attempt (time, items, efficiency, memory);
6. `_step6_decide`: retry with a delay, defer, or dead-letter;
7. `_step7_report`: write the results and the attempts' metrics of a claimed batch in one
   transaction, each fenced by its own lease token, so a crash never leaves one without the
   other. Chunks stay in flight (leases extended) until written, at most 0.1 s after they end.

A heartbeat thread keeps the worker's row alive and extends the leases of the chunks in flight.
The upkeep thread (chunksync.runtime.upkeep) sweeps stuck chunks and runs alerts, retention and
the stress feed, each on its own timer: the slots only claim and run chunks.
On stop (SIGTERM, Ctrl-C, `stop()`), slots finish their chunk within a grace period; a chunk
still running after it is released with its attempt given back. Never lost.
"""

from __future__ import annotations

import itertools
import logging
import os
import signal
import socket
import statistics
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from chunksync.context import ChunkContext
from chunksync.errors import Categorization, categorize
from chunksync.exceptions import Abort, BackendError, ChunksyncError
from chunksync.manager import FinishResult, Manager, Recovery, Report
from chunksync.models import (
    Attempt,
    Chunk,
    ChunkStatus,
    ErrorCategory,
    Outcome,
    Queue,
    QueueStatus,
)
from chunksync.observe import model as health
from chunksync.redact import redact
from chunksync.registry import Registry
from chunksync.retry import (
    Action,
    Gate,
    RandomSource,
    RetryBudget,
    RetryPolicy,
    admit_or_hold,
    decide_failure,
)
from chunksync.runtime.upkeep import Upkeep
from chunksync.settings import Settings

if TYPE_CHECKING:
    from chunksync.sources.base import Source

log = logging.getLogger("chunksync.runtime.worker")

LEASE_SECONDS = 30.0
POLL_SECONDS = 1.0
HANDLER_TIMEOUT_SECONDS = 300.0
SHUTDOWN_GRACE_SECONDS = 30.0
MEDIAN_WINDOW = 200
MEDIAN_MIN_SAMPLES = 5
MEDIAN_REFRESH = 25  # the queue's median efficiency is recomputed every this many attempts
MESSAGE_MAX_CHARS = 2000
BACKEND_ERROR_PAUSE_SECONDS = 1.0
REPORT_FLUSH_SECONDS = 0.1  # results of a claimed batch wait at most this long to be written
WATCH_SECONDS = 0.05  # how often the watchdog looks for handlers past their timeout
RSS_SAMPLE_SECONDS = 0.5
MAX_CLAIM_BATCH = 512
QUICK_CHUNK_SECONDS = 0.01  # chunks quicker than this are claimed in growing batches
BATCH_GROWTH_SECONDS = 0.25  # ... while a whole batch takes less than this (no hoarding)
FINISHED_QUEUE = frozenset({QueueStatus.COMPLETED, QueueStatus.FAILED, QueueStatus.CANCELLED})


@dataclass(slots=True)
class _InFlight:
    chunk: Chunk
    token: str
    ctx: ChunkContext | None = None


_rss_cache: tuple[float, int | None] = (-1e9, None)
_ABANDONED = TimeoutError("abandoned by the watchdog")  # a marker, never raised


@dataclass(slots=True)
class _Running:
    """The chunk a slot's handler runs now, with what the watchdog needs to time it out."""

    item: _InFlight
    ctx: ChunkContext
    started: float
    deadline: float | None
    size: int
    probe: bool


class _Slot:
    """One slot's claimed batch, its results not yet written and the chunk it runs now: shared
    by the slot's thread and the watchdog, under `lock`."""

    def __init__(self, thread: threading.Thread) -> None:
        self.thread = thread
        self.lock = threading.Lock()
        self.items: deque[_InFlight] = deque()
        self.reports: list[tuple[_InFlight, Report]] = []
        self.running: _Running | None = None
        self.abandoned = False


def queues_finished(manager: Manager, queue_ids: Sequence[str]) -> bool:
    """Whether every named queue is terminal (completed, failed or cancelled)."""
    return all(manager.get_queue(q).status in FINISHED_QUEUE for q in queue_ids)


def rss_bytes() -> int | None:
    """This process's resident memory, sampled at most every RSS_SAMPLE_SECONDS."""
    global _rss_cache
    now = time.monotonic()
    if now - _rss_cache[0] >= RSS_SAMPLE_SECONDS:
        _rss_cache = (now, _read_rss())
    return _rss_cache[1]


def _read_rss() -> int | None:
    """This process's resident memory now (Linux), else its peak."""
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        import resource

        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def error_message(error: BaseException) -> str:
    """The redacted, bounded text stored for a failure."""
    text = f"{type(error).__name__}: {error}"
    return redact(text)[:MESSAGE_MAX_CHARS]


class Worker:
    def __init__(
        self,
        manager: Manager,
        registry: Registry,
        settings: Settings | None = None,
        *,
        concurrency: int = 1,
        queue_id: str | None = None,
        lease_s: float = LEASE_SECONDS,
        poll_s: float = POLL_SECONDS,
        handler_timeout_s: float | None = HANDLER_TIMEOUT_SECONDS,
        worker_timeout_s: float | None = None,
        shutdown_grace_s: float = SHUTDOWN_GRACE_SECONDS,
        batch: int = MAX_CLAIM_BATCH,
        rng: RandomSource | None = None,
        time_scale: float = 1.0,
        worker_id: str | None = None,
    ) -> None:
        if concurrency < 1 or batch < 1:
            raise ValueError("concurrency and batch must be at least 1")
        self.manager = manager
        self.registry = registry
        self.settings = settings or Settings()
        self.concurrency = concurrency
        self.queue_id = queue_id
        self.lease_s = lease_s
        self.poll_s = poll_s
        self.handler_timeout_s = handler_timeout_s
        self.worker_timeout_s = worker_timeout_s or max(2 * lease_s, 3 * poll_s)
        self.shutdown_grace_s = shutdown_grace_s
        self.batch = batch
        self.rng = rng
        self.time_scale = time_scale
        self.id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._stopping = threading.Event()
        self._stopped = threading.Event()
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._in_flight: dict[str, _InFlight] = {}
        self._threads: list[threading.Thread] = []  # the heartbeat and the watchdog
        self._slot_threads: list[threading.Thread] = []
        self._slots: list[_Slot] = []
        self._slot_names = itertools.count()
        self.upkeep = Upkeep(
            manager,
            registry,
            self.settings,
            worker_id=self.id,
            recovery_every_s=poll_s,
            worker_timeout_s=self.worker_timeout_s,
            policy_for_queue=self._policy_for_queue,
            on_recovered=self._count_recoveries,
        )
        self._efficiency: dict[str, deque[float]] = {}
        self._queues: dict[str, Queue] = {}
        self._budget_of_queue: dict[str, RetryBudget] = {}  # for the claim's gate check
        self._routes: dict[str, tuple[Source, RetryBudget]] = {}
        self._medians: dict[str, float | None] = {}
        self._samples: dict[str, int] = {}
        self._unsubscribe: Callable[[], None] = lambda: None
        self.recoveries = 0
        self.processed = 0

    # --- lifecycle -----------------------------------------------------------------

    def start(self) -> None:
        self.manager.register_worker(self.id, socket.gethostname(), os.getpid(), self.concurrency)
        log.info("worker %s started with %d slot(s)", self.id, self.concurrency)
        beat = threading.Thread(
            target=self._heartbeat_loop, name=f"{self.id}-heartbeat", daemon=True
        )
        self._unsubscribe = self.manager.backend.subscribe_work(self._wake.set)
        self._threads = [beat]
        if self.handler_timeout_s is not None:
            watch = threading.Thread(target=self._watch_loop, name=f"{self.id}-watch", daemon=True)
            self._threads.append(watch)
        for t in self._threads:
            t.start()
        self.upkeep.start()
        for _ in range(self.concurrency):
            self._start_slot()

    def _start_slot(self) -> threading.Thread:
        name = f"{self.id}-slot{next(self._slot_names)}"
        thread = threading.Thread(target=self._slot_loop, name=name, daemon=True)
        with self._lock:
            self._slot_threads.append(thread)
        thread.start()
        return thread

    def stop(self, grace_s: float | None = None) -> None:
        """Stop claiming; let running chunks finish within the grace period, release the rest."""
        if self._stopped.is_set():
            return
        self._stopping.set()
        self._wake.set()
        deadline = time.monotonic() + (self.shutdown_grace_s if grace_s is None else grace_s)
        with self._lock:
            slot_threads = list(self._slot_threads)
        for t in slot_threads:
            t.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            leftovers = list(self._in_flight.values())
            self._in_flight.clear()
        for item in leftovers:
            if item.ctx is not None:
                item.ctx._cancel()
            if self.manager.release(item.chunk, item.token, refund=True):
                log.warning("released chunk %s on stop (attempt given back)", item.chunk.id)
        self._stopped.set()
        self._unsubscribe()
        self.upkeep.stop()
        for t in self._threads:
            t.join(5.0)
        self.manager.worker_stopped(self.id)
        self.registry.close()
        log.info("worker %s stopped after %d chunk(s)", self.id, self.processed)

    def run(self, *, until: Callable[[], bool] | None = None, check_s: float = 0.2) -> None:
        """Run until SIGTERM/Ctrl-C (or until `until()` is true), then stop gracefully."""
        previous = self._install_signals()
        self.start()
        try:
            while not self._stopping.is_set():
                if until is not None and until():
                    break
                self._stopping.wait(check_s)
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def run_until_done(self, queue_ids: Sequence[str], *, timeout_s: float | None = None) -> None:
        """Run until every named queue is terminal (completed, failed or cancelled)."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s

        def done() -> bool:
            if deadline is not None and time.monotonic() > deadline:
                return True
            return queues_finished(self.manager, queue_ids)

        self.run(until=done)

    def _install_signals(self) -> dict[int, Any]:
        if threading.current_thread() is not threading.main_thread():
            return {}

        def on_signal(signum: int, _frame: object) -> None:
            if self._stopping.is_set():  # a second signal: do not wait for running chunks
                self.shutdown_grace_s = 0.0
            log.warning("signal %d: stopping after the running chunks", signum)
            self._stopping.set()

        previous: dict[int, Any] = {}
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous[signum] = signal.signal(signum, on_signal)
        return previous

    # --- the loop -----------------------------------------------------------------

    def _slot_loop(self) -> None:
        slot = _Slot(threading.current_thread())
        with self._lock:
            self._slots.append(slot)
        try:
            self._work(slot)
        finally:
            with self._lock:
                if slot in self._slots:
                    self._slots.remove(slot)

    def _work(self, slot: _Slot) -> None:
        batch = 1  # grows while chunks are quick, back to 1 when one is slow
        while not self._stopping.is_set():
            try:
                exclude, size = self._step1_precheck(batch)
                claimed = self._step2_claim(size, exclude)
            except BackendError as exc:
                log.error(
                    "database error, retrying in %.0f s: %s",
                    BACKEND_ERROR_PAUSE_SECONDS,
                    redact(str(exc)),
                )
                self._stopping.wait(BACKEND_ERROR_PAUSE_SECONDS)
                continue
            if not claimed:
                self._wake.wait(self._idle_wait_s())
                self._wake.clear()
                continue
            began, first_unwritten, held, failed = time.monotonic(), 0.0, False, 0
            with slot.lock:
                slot.items.extend(claimed)
            while True:
                with slot.lock:
                    if slot.abandoned:
                        return
                    if self._stopping.is_set() or not slot.items:
                        break  # the rest is released by stop(), attempts given back
                    item = slot.items.popleft()
                report = self._run_one(item, slot)
                with slot.lock:
                    if slot.abandoned:
                        return  # the watchdog recorded this chunk's timeout: this result is void
                    if report is not None:
                        first_unwritten = first_unwritten or time.monotonic()
                        slot.reports.append((item, report))
                        held = held or report.result.outcome is Outcome.HELD
                        failed += report.result.outcome in health.FAILED_OUTCOMES
                    due = time.monotonic() - first_unwritten >= REPORT_FLUSH_SECONDS
                    reports, slot.reports = (slot.reports, []) if due else ([], slot.reports)
                if reports:
                    self._step7_report(reports)
                    first_unwritten = 0.0
            with slot.lock:
                reports, slot.reports = slot.reports, []
            self._step7_report(reports)
            # A held chunk is instant but no sign of quick work: its gate just shut. Nor is a batch
            # that mostly failed fast (its dependency is likely down): grown on that, a slot would
            # pile chunks up behind one handler, all found stuck together if its worker dies.
            if held or failed * 2 > len(claimed):
                batch = 1
            else:
                batch = self._next_batch(batch, time.monotonic() - began, len(claimed))

    def _run_one(self, item: _InFlight, slot: _Slot) -> Report | None:
        """Steps 3 to 6 for one chunk; its report is written by step 7 with its batch."""
        report = None
        try:
            queue = self._queue(item.chunk.queue_id)
            source, budget = self._route(queue)
            gate, hold_s = self._step3_gate(budget)
            if gate is Gate.HOLD:
                return self._held(item, hold_s)
            started = time.monotonic()
            deadline = None if self.handler_timeout_s is None else started + self.handler_timeout_s
            ctx = ChunkContext(
                chunk=item.chunk,
                queue=queue,
                lease_token=item.token,
                manager=self.manager,
                lease_s=self.lease_s,
                budget=budget,
                deadline=deadline,
                worker_id=self.id,
            )
            item.ctx = ctx
            size, probe = source.chunk_size(item.chunk.payload), gate is Gate.PROBE
            running = _Running(item, ctx, started, deadline, size, probe)
            error = self._step3_process(slot, running, source.process)
            if error is _ABANDONED:
                return None
            analysis = None if error is None else self._step4_analyze(error)
            measured = self._step5_log(ctx, size, started)
            result = self._step6_decide(ctx, error, analysis, measured.items_processed, probe)
            report = self._report(item, result, measured, analysis)
        except BackendError as exc:
            # Nothing can be written now; the lease will expire and recovery takes over.
            log.error("chunk %s: database error: %s", item.chunk.id, redact(str(exc)))
        except ChunksyncError as exc:  # e.g. no source for the queue's kind
            report = self._setup_failure(item, exc)
        self.processed += 1
        return report

    def _step1_precheck(self, batch: int) -> tuple[list[str], int]:
        """Before a claim: the queues whose dependency's gate is shut are left out, and while a
        gate's probe is due the claim takes a single chunk (the probe), not a batch that would
        only be held. (Stuck chunks are swept by the upkeep thread, not here.)"""
        now = time.monotonic()
        budgets = list(self._budget_of_queue.items())
        shut = [queue_id for queue_id, budget in budgets if budget.shut(now)]
        if any(
            budget.next_probe_at() is not None and not budget.shut(now) for _, budget in budgets
        ):
            batch = 1
        return shut, batch

    def _count_recoveries(self, recovered: list[Recovery]) -> None:
        self.recoveries += len(recovered)

    def _idle_wait_s(self) -> float:
        """Until the next poll, or sooner when a shut gate's next probe falls due first."""
        probes = [b.next_probe_at() for b in list(self._budget_of_queue.values())]
        due = [t for t in probes if t is not None]
        if not due:
            return self.poll_s
        return max(0.0, min(self.poll_s, min(due) - time.monotonic()))

    def _next_batch(self, batch: int, elapsed_s: float, claimed: int) -> int:
        """Claim more at once only while chunks take under QUICK_CHUNK_SECONDS each and the
        batch under BATCH_GROWTH_SECONDS: each claim and commit is shared by more chunks, and
        a slot never holds more than about half a second of work that others could run."""
        quick = claimed and elapsed_s / claimed < QUICK_CHUNK_SECONDS
        if quick and claimed == batch and elapsed_s < BATCH_GROWTH_SECONDS:
            return min(batch * 2, self.batch)
        return 1 if claimed and elapsed_s / claimed >= QUICK_CHUNK_SECONDS else batch

    def _step2_claim(self, batch: int, exclude: list[str]) -> list[_InFlight]:
        """Lease up to `batch` runnable chunks of the kinds this worker has handlers for."""
        kinds = self.registry.kinds()
        token, chunks = self.manager.claim(
            self.id,
            kinds,
            limit=batch,
            lease_s=self.lease_s,
            queue_id=self.queue_id,
            exclude=exclude,
        )
        items = [_InFlight(c, token) for c in chunks]
        with self._lock:
            for item in items:
                self._in_flight[item.token + item.chunk.id] = item
        return items

    def _step3_gate(self, budget: RetryBudget) -> tuple[Gate, float]:
        """Step 3's pre-condition: while the chunk's dependency is stressed, only one probe call
        per probe interval goes through; the others are held (for the seconds returned)."""
        return admit_or_hold(budget, time.monotonic(), time_scale=self.time_scale, rng=self.rng)

    def _held(self, item: _InFlight, hold_s: float) -> Report:
        """A chunk the gate held: back to pending, its attempt given back, no handler call, not a
        failure; recorded as a `held` attempt row (processing time 0) so that health shows it."""
        chunk = item.chunk
        result = FinishResult(
            ChunkStatus.PENDING,
            Outcome.HELD,
            delay_s=hold_s * self.time_scale,
            attempts_delta=-1,
            items=chunk.items_processed,
        )
        attempt = Attempt(
            chunk_id=chunk.id,
            queue_id=chunk.queue_id,
            tenant=chunk.tenant,
            worker_id=self.id,
            attempt=chunk.attempts,
            started_at=0.0,
            finished_at=0.0,
            outcome=Outcome.HELD,
            message="not attempted: its dependency is stressed",
            retry_delay_s=hold_s,
        )
        return Report(chunk, item.token, result, attempt)

    def _step3_process(
        self, slot: _Slot, running: _Running, handler: Callable[[ChunkContext], int | None]
    ) -> BaseException | None:
        """Run the handler on this slot's thread (a hand-off to another thread per chunk cost a
        fifth of a quick chunk). The watchdog enforces the timeout (see `_watch_loop`); when it
        has, the result is void and `_ABANDONED` is returned."""
        with slot.lock:
            slot.running = running
        try:
            self._count_items(running.ctx, handler(running.ctx))
            error: BaseException | None = None
        except Exception as exc:
            error = exc
        with slot.lock:
            if slot.abandoned:
                return _ABANDONED
            slot.running = None  # returned in time: the watchdog leaves this chunk alone
            return error

    def _watch_loop(self) -> None:
        """Time handlers out. Python cannot stop a thread, so a handler past its timeout is
        abandoned on its thread: its context is cancelled (its heartbeats and checkpoints
        raise), its chunk recorded as a timeout, the rest of its slot's batch released (attempts
        given back), and a fresh slot thread takes the slot's place. Whatever the abandoned
        handler does later is void: its lease token no longer matches."""
        while not self._stopped.wait(WATCH_SECONDS):
            now = time.monotonic()
            with self._lock:
                slots = list(self._slots)
            for slot in slots:
                with slot.lock:
                    running = slot.running
                    if slot.abandoned or running is None or running.deadline is None:
                        continue
                    if now < running.deadline:
                        continue
                    slot.abandoned = True
                    rest, slot.items = list(slot.items), deque()
                    reports, slot.reports = slot.reports, []
                try:
                    self._abandon(slot, running, rest, reports)
                except Exception:  # the watchdog must outlive any one chunk's trouble
                    log.exception("chunk %s: could not time it out", running.item.chunk.id)

    def _abandon(
        self,
        slot: _Slot,
        running: _Running,
        rest: list[_InFlight],
        reports: list[tuple[_InFlight, Report]],
    ) -> None:
        with self._lock:
            if slot in self._slots:
                self._slots.remove(slot)
            if slot.thread in self._slot_threads:  # stop() need not wait for it
                self._slot_threads.remove(slot.thread)
        running.ctx._cancel()
        error = TimeoutError(f"handler ran past its timeout of {self.handler_timeout_s:g} s")
        item, ctx = running.item, running.ctx
        try:
            analysis = self._step4_analyze(error)
            measured = self._step5_log(ctx, running.size, running.started)
            result = self._step6_decide(
                ctx, error, analysis, measured.items_processed, running.probe
            )
            reports.append((item, self._report(item, result, measured, analysis)))
        except BackendError as exc:
            log.error("chunk %s: database error: %s", item.chunk.id, redact(str(exc)))
        self._step7_report(reports)
        for other in rest:
            with self._lock:
                self._in_flight.pop(other.token + other.chunk.id, None)
            try:
                self.manager.release(other.chunk, other.token, refund=True)
            except BackendError as exc:  # its lease will expire and recovery takes over
                log.error("chunk %s: database error: %s", other.chunk.id, redact(str(exc)))
        if not self._stopping.is_set():
            self._start_slot()

    @staticmethod
    def _count_items(ctx: ChunkContext, returned: int | None) -> None:
        if isinstance(returned, int) and not isinstance(returned, bool) and returned >= 0:
            ctx.items_processed = returned
        elif ctx.items_processed == 0:
            ctx.items_processed = -1  # not reported: the chunk size stands in, in _step5_log

    def _step4_analyze(self, error: BaseException) -> Categorization:
        return categorize(error)

    def _step5_log(self, ctx: ChunkContext, size: int, started: float) -> Attempt:
        elapsed = max(time.monotonic() - started, 1e-9)
        items = size if ctx.items_processed < 0 else ctx.items_processed
        ctx.items_processed = items
        ips = items / elapsed
        window = self._efficiency.get(ctx.queue.id)
        if window is None:
            window = self._efficiency[ctx.queue.id] = deque(maxlen=MEDIAN_WINDOW)
        seen = self._samples[ctx.queue.id] = self._samples.get(ctx.queue.id, 0) + 1
        if seen > MEDIAN_MIN_SAMPLES and (seen - MEDIAN_MIN_SAMPLES - 1) % MEDIAN_REFRESH == 0:
            self._medians[ctx.queue.id] = statistics.median(window)
        median = self._medians.get(ctx.queue.id)
        window.append(ips)
        return Attempt(
            chunk_id=ctx.chunk.id,
            queue_id=ctx.queue.id,
            tenant=ctx.chunk.tenant,
            worker_id=self.id,
            attempt=ctx.attempt,
            started_at=0.0,
            finished_at=elapsed,
            outcome=Outcome.COMPLETED,
            chunk_size=size,
            items_processed=items,
            items_per_s=ips,
            efficiency=None if not median else ips / median,
            rss_bytes=rss_bytes(),
        )

    def _step6_decide(
        self,
        ctx: ChunkContext,
        error: BaseException | None,
        analysis: Categorization | None,
        items: int,
        probe: bool = False,
    ) -> FinishResult:
        budget = ctx._budget
        if error is None or analysis is None:
            budget.on_success()
            return FinishResult(ChunkStatus.COMPLETED, Outcome.COMPLETED, items=items)
        category, message = analysis.category, error_message(error)
        if isinstance(error, Abort):
            return FinishResult(
                ChunkStatus.DEAD,
                Outcome.DEAD,
                category=category,
                message=message,
                dead_reason=redact(f"aborted: {error.reason}"),
                items=items,
            )
        chunk = ctx.chunk
        decision = decide_failure(
            self.registry.policy(ctx.queue.policy),
            budget,
            category,
            attempts=chunk.attempts,
            max_attempts=chunk.max_attempts,
            retry_after_s=analysis.retry_after_s,
            stress_retries=chunk.stress_retries,
            deferrals=chunk.deferrals,
            rng=self.rng,
            probe=probe,
        )
        delay = decision.delay_s * self.time_scale
        common: dict[str, Any] = {"category": category, "message": message, "items": items}
        if decision.action is Action.DEAD:
            return FinishResult(
                ChunkStatus.DEAD, Outcome.DEAD, dead_reason=decision.reason, delay_s=0.0, **common
            )
        if decision.action is Action.DEFER:
            return FinishResult(
                ChunkStatus.PENDING,
                Outcome.DEFERRED,
                delay_s=delay,
                attempts_delta=-1,
                deferrals_delta=1,
                **common,
            )
        return FinishResult(
            ChunkStatus.PENDING,
            Outcome.RETRIED,
            delay_s=delay,
            stress_delta=1 if decision.stress_retry else 0,
            **common,
        )

    def _report(
        self,
        item: _InFlight,
        result: FinishResult,
        measured: Attempt,
        analysis: Categorization | None,
    ) -> Report:
        if analysis is None and result.outcome is Outcome.COMPLETED and result.message is None:
            return Report(item.chunk, item.token, result, measured)  # as measured: no copy
        policy_delay = result.delay_s / self.time_scale if self.time_scale else result.delay_s
        attempt = replace(
            measured,
            outcome=result.outcome,
            category=None if analysis is None else analysis.category,
            rule=None if analysis is None else analysis.rule,
            message=result.message,
            retry_delay_s=policy_delay if result.status is ChunkStatus.PENDING else None,
        )
        return Report(item.chunk, item.token, result, attempt)

    def _step7_report(self, reports: list[tuple[_InFlight, Report]]) -> None:
        """Write results and attempt metrics, one transaction per batch, each fenced by its
        own chunk's lease token; the chunks stay in flight (leases extended) until written."""
        if not reports:
            return
        try:
            owned = self.manager.finish_many([r for _, r in reports])
        except BackendError as exc:
            log.error(
                "could not record %d result(s), recovery will take them over: %s",
                len(reports),
                redact(str(exc)),
            )
            owned = []
        for (item, report), ok in zip(reports, owned, strict=False):
            a = report.attempt
            if not ok:
                log.warning(
                    "lost the lease on chunk %s: its result (%s) was not written",
                    item.chunk.id,
                    report.result.outcome,
                )
            elif a.category is not None:
                log.info(
                    "chunk %s attempt %d: %s (%s) -> %s in %.2f s",
                    item.chunk.id,
                    a.attempt,
                    a.category,
                    a.rule,
                    a.outcome,
                    report.result.delay_s,
                )
        with self._lock:
            for item, _ in reports:
                self._in_flight.pop(item.token + item.chunk.id, None)
        if any(r.result.status is ChunkStatus.PENDING for _, r in reports):
            self._wake.set()

    def _setup_failure(self, item: _InFlight, exc: ChunksyncError) -> Report:
        """No handler can run this chunk here (unknown kind, bad payload): it goes dead, clearly."""
        message = redact(str(exc))
        log.error("chunk %s cannot be processed: %s", item.chunk.id, message)
        result = FinishResult(
            ChunkStatus.DEAD,
            Outcome.DEAD,
            category=ErrorCategory.PROCESSING_ERROR,
            message=message,
            dead_reason=message,
        )
        attempt = Attempt(
            chunk_id=item.chunk.id,
            queue_id=item.chunk.queue_id,
            tenant=item.chunk.tenant,
            worker_id=self.id,
            attempt=item.chunk.attempts,
            started_at=0.0,
            finished_at=0.0,
            outcome=Outcome.DEAD,
            category=ErrorCategory.PROCESSING_ERROR,
            rule="setup",
            message=message,
        )
        return Report(item.chunk, item.token, result, attempt)

    # --- helpers -----------------------------------------------------------------

    def _route(self, queue: Queue) -> tuple[Source, RetryBudget]:
        """The queue's source and its dependency's budget, worked out once per queue."""
        found = self._routes.get(queue.id)
        if found is None:
            source = self.registry.source_for(queue)
            stress = self.registry.policy(queue.policy).stress
            budget = self.registry.budgets.get(source.dependency(queue.source), stress)
            found = self._routes[queue.id] = (source, budget)
            self._budget_of_queue[queue.id] = budget
        return found

    def _queue(self, queue_id: str) -> Queue:
        queue = self._queues.get(queue_id)
        if queue is None:
            queue = self._queues[queue_id] = self.manager.get_queue(queue_id)
        return queue

    def _policy_for_queue(self, queue_id: str) -> RetryPolicy:
        return self.registry.policy(self._queue(queue_id).policy)

    def _heartbeat_loop(self) -> None:
        interval = max(0.05, min(self.lease_s / 3.0, 5.0))
        while not self._stopped.wait(interval):
            try:
                status = "stopping" if self._stopping.is_set() else "running"
                self.manager.worker_heartbeat(self.id, status)
                with self._lock:
                    tokens = sorted({i.token for i in self._in_flight.values()})
                self.manager.extend_leases(self.id, tokens, self.lease_s)
            except BackendError as exc:
                log.error("heartbeat failed: %s", redact(str(exc)))
