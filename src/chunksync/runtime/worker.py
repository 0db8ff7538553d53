"""The worker: slots (threads) that run the seven-step loop, a heartbeat, and a graceful stop.

Each slot (chunksync.runtime.slot) loops over the seven steps, each a method of `Worker` named
for it; what an attempt comes to is decided by the pure rules of chunksync.runtime.attempt,
which steps 4 to 6 call and the worker only applies:

1. `_step1_precheck`: know the fleet's limited and gated dependencies (chunksync.deps, read at
   most every 0.2 s; their rows are read afresh under a lock by the claim itself);
2. `_step2_claim`: lease the next runnable chunk(s): a limited or gated dependency's within
   its free slots, rate units and gate (one probe per interval for the whole fleet), the
   others by the plain claim (chunksync.runtime.claims);
3. `_step3_process`: run the source's handler (the watchdog of chunksync.runtime.watchdog
   times it out); its pre-condition, `_step3_gate`, holds a chunk whose dependency stopped
   flowing since it was claimed: back to pending, attempt given back, no call, not a failure;
4. `_step4_analyze`: categorize a failure and word its stored, redacted message;
5. `_step5_measure`: measure the attempt (time, items, efficiency, memory): its metrics row;
6. `_step6_decide`: complete, retry with a delay, defer, or dead-letter, and the row says so;
7. `_step7_report`: write the results and the attempts' metrics of a claimed batch in one
   transaction, each fenced by its own lease token, so a crash never leaves one without the
   other. Chunks stay in flight (leases extended) until written, at most 0.1 s after they end.
   Then what the batch charged to its dependencies goes to their shared rows.

A heartbeat thread (chunksync.runtime.heartbeat) keeps the worker's row alive and extends the
leases of the chunks in flight.
The upkeep thread (chunksync.runtime.upkeep) sweeps stuck chunks and runs alerts, retention and
the stress feed, each on its own timer: the slots only claim and run chunks.
On stop (SIGTERM, Ctrl-C, `stop()`), slots finish their chunk within a grace period; a chunk
still running after it is released with its attempt given back. Never lost.
"""

from __future__ import annotations

import functools
import itertools
import logging
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from chunksync.context import ChunkContext
from chunksync.deps.budget import RetryBudget, RetryBudgets, hold_delay
from chunksync.deps.store import Special
from chunksync.exceptions import BackendError, ChunksyncError
from chunksync.manager import Manager, Recovery
from chunksync.models import Attempt, ChunkStatus, Queue
from chunksync.redact import redact
from chunksync.registry import Registry
from chunksync.results import Report
from chunksync.retry import Gate, RandomSource, RetryPolicy
from chunksync.runtime import asyncrun, attempt, heap, progress, slot
from chunksync.runtime.attempt import Failure
from chunksync.runtime.claims import Claims
from chunksync.runtime.heartbeat import Heartbeat
from chunksync.runtime.isolation import run_isolated
from chunksync.runtime.measure import Efficiency, rss_bytes
from chunksync.runtime.slot import InFlight, InFlightTable, Reports, Running, Slot
from chunksync.runtime.upkeep import Upkeep, recovery_every_s
from chunksync.runtime.watchdog import ABANDONED, StopReport, Watchdog
from chunksync.settings import Settings

if TYPE_CHECKING:
    from chunksync.sources.base import Source

log = logging.getLogger("chunksync.runtime.worker")

LEASE_SECONDS = 30.0
REGISTER_WAIT_SECONDS = 60.0  # a starting worker waits this long for a database that went away
POLL_SECONDS = 1.0
HANDLER_TIMEOUT_SECONDS = 300.0
SHUTDOWN_GRACE_SECONDS = 30.0
MAX_CLAIM_BATCH = 512
# A worker's statements may run on this many pooled connections at once by default (its slots
# and its heartbeat, slots + 1 at most this); `db_connections` sets it (Backend.use_connections).
DB_CONNECTIONS_MAX = 4


class Worker:
    """Runs chunks of the registry's kinds: `run()` until a signal, `run_until_done()` until
    queues are terminal, or `start()` and `stop()` around other work."""

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
        isolate: Mapping[str, float] | None = None,
        db_connections: int | None = None,
    ) -> None:
        if concurrency < 1 or batch < 1 or (db_connections is not None and db_connections < 1):
            raise ValueError("concurrency, batch and db_connections must be at least 1")
        self.manager = manager
        self.registry = registry
        self.settings = settings or Settings()
        self.concurrency = concurrency
        self.db_connections = db_connections or min(concurrency + 1, DB_CONNECTIONS_MAX)
        # One queue's worker: an id that names no queue is refused here, in one sentence (it
        # claimed nothing, and PostgreSQL refused each claim of a text that is no uuid).
        self.queue_id = None if queue_id is None else manager.queue_row(queue_id).id
        self.lease_s = lease_s
        self.poll_s = poll_s
        self.handler_timeout_s = handler_timeout_s
        self.worker_timeout_s = worker_timeout_s or max(2 * lease_s, 3 * poll_s)
        self.shutdown_grace_s = shutdown_grace_s
        self.batch = batch
        # Kinds whose handler runs in a process of its own, killed after so many seconds.
        self.isolate = dict(isolate or {})
        self.rng = rng
        self.time_scale = time_scale
        self.id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._stopping = threading.Event()
        self._stopped = threading.Event()
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._held = InFlightTable()
        self._threads: list[threading.Thread] = []  # the heartbeat and the watchdog
        self._slot_threads: list[threading.Thread] = []
        self._slots: list[Slot] = []
        self._slot_names = itertools.count()
        self.upkeep = self._upkeep()
        # The budgets are this process's mirrors of the dependencies' shared rows; a worker on
        # a faster clock (tests, the demo) keeps its own, its gate's intervals scaled.
        budgets = registry.budgets if time_scale == 1.0 else RetryBudgets(time_scale=time_scale)
        self._claims = Claims(manager, budgets, worker_id=self.id, lease_s=lease_s)
        self._claims.on_permit_back = registry.permits_held  # sources close idle connections
        self._efficiency = Efficiency()
        self._queues: dict[str, Queue] = {}
        self._budget_of_queue: dict[str, RetryBudget] = {}  # for the claim's gate check
        self._routes: dict[str, tuple[Source, RetryBudget]] = {}
        self._dependency_of_queue: dict[str, str] = {}
        self._unsubscribe: Callable[[], None] = lambda: None
        self.recoveries = 0
        self.processed = 0
        self._holds_heap = False  # this worker's part in freezing the heap (runtime.heap)

    def _upkeep(self) -> Upkeep:
        return Upkeep(
            self.manager,
            self.registry,
            self.settings,
            worker_id=self.id,
            recovery_every_s=recovery_every_s(self.poll_s, self.lease_s),
            worker_timeout_s=self.worker_timeout_s,
            policy_for_queue=self._policy_for_queue,
            on_recovered=self._count_recoveries,
        )

    # --- lifecycle -----------------------------------------------------------------

    def start(self) -> None:
        self.manager.backend.use_connections(self.db_connections)
        self._register()
        log.info("worker %s started with %d slot(s)", self.id, self.concurrency)
        heartbeat = Heartbeat(
            self.manager,
            self.id,
            self.lease_s,
            self._held.leases,
            self._stopping,
            self._stopped,
        )
        beat = threading.Thread(target=heartbeat.run, name=f"{self.id}-heartbeat", daemon=True)
        self._unsubscribe = self.manager.backend.subscribe_work(self._wake.set)
        self._threads = [beat]
        if self.handler_timeout_s is not None:
            watchdog = Watchdog(self, self.handler_timeout_s, self._stopped)
            watch = threading.Thread(target=watchdog.run, name=f"{self.id}-watch", daemon=True)
            self._threads.append(watch)
        for t in self._threads:
            t.start()
        self.upkeep.start()
        heap.hold()
        self._holds_heap = True
        for _ in range(self.concurrency):
            self._start_slot()

    def _register(self) -> None:
        """Record this worker, waiting (up to REGISTER_WAIT_SECONDS) for a database that went
        away a moment ago, a restart or a failover: a worker that already opened its app does
        not exit for that. A stop meanwhile ends the wait."""
        deadline, pause = time.monotonic() + REGISTER_WAIT_SECONDS, 0.25
        while True:
            try:
                host, pid = socket.gethostname(), os.getpid()
                self.manager.register_worker(self.id, host, pid, self.concurrency)
                return
            except BackendError as exc:
                if time.monotonic() + pause > deadline or self._stopping.is_set():
                    raise
                log.error("cannot register yet, retrying in %.2f s: %s", pause, redact(str(exc)))
                self._stopping.wait(pause)
                pause = min(pause * 2, 5.0)

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
        grace = self.shutdown_grace_s if grace_s is None else grace_s
        report = StopReport(self.id)
        with report.watched():
            self._stop_steps(report, time.monotonic() + grace)
        log.info("worker %s stopped after %d chunk(s)", self.id, self.processed)

    def _stop_steps(self, report: StopReport, deadline: float) -> None:
        with self._lock:
            slot_threads = list(self._slot_threads)
        for t in slot_threads:
            report.waiting = f"slot {t.name} to end ({self._running_on(t)}, within the grace)"
            t.join(max(0.0, deadline - time.monotonic()))
        leftovers = self._held.close()  # a claim that returns later gives its chunks back
        if self._holds_heap:  # its slots are done: before anything below can fail
            self._holds_heap = False
            heap.release()
        report.waiting = f"the database, to give back {len(leftovers)} unfinished chunk(s)"
        self._release(leftovers)
        report.waiting = "the database, to give back the dependencies' permits"
        self._claims.release_permits()
        self._stopped.set()
        self._unsubscribe()
        report.waiting = "the upkeep's duty to end"
        self.upkeep.stop()
        for t in self._threads:
            report.waiting = f"thread {t.name} to end"
            t.join(5.0)
        report.waiting = "the database, to mark the worker stopped"
        try:  # a stop ends whatever the database does: the sources are closed all the same
            self.manager.worker_stopped(self.id)
        except BackendError as exc:
            log.error(
                "worker %s could not be marked stopped (database error: %s); the fleet counts it "
                "gone when its heartbeat is seen to end",
                self.id, redact(str(exc)),
            )  # fmt: skip
        report.waiting = "the sources to close"
        self.registry.close()

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

    def run_until_done(
        self,
        queue_ids: Sequence[str],
        *,
        timeout_s: float | None = None,
        on_progress: progress.Listener | None = None,
    ) -> progress.RunSummary:
        """Run until every named queue is terminal (completed, failed or cancelled); returns
        what the run came to. `on_progress(done, total)` hears the chunk counts as it goes."""
        began = time.monotonic()
        deadline = None if timeout_s is None else began + timeout_s
        tracker, finished = progress.Tracker(self.manager, queue_ids, on_progress), False

        def done() -> bool:
            nonlocal finished
            finished = tracker.finished()
            return finished or (deadline is not None and time.monotonic() > deadline)

        self.run(until=done, check_s=tracker.check_s)
        elapsed, outcomes = time.monotonic() - began, tracker.outcomes()
        return progress.RunSummary(
            self.id, finished, elapsed, self.processed, self.recoveries, outcomes
        )

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

    # --- slots: started here, looped in chunksync.runtime.slot, timed out by the watchdog ----

    def _slot_loop(self) -> None:
        this = Slot(threading.current_thread())
        with self._lock:
            self._slots.append(this)
        try:
            slot.work(this, self, stopping=self._stopping, wake=self._wake, max_batch=self.batch)
        finally:
            asyncrun.close_loop()  # the loop of its `async def` handlers, if it ran any
            with self._lock:
                if this in self._slots:
                    self._slots.remove(this)

    def _running_on(self, thread: threading.Thread) -> str:
        running = [s.running for s in self._live_slots() if s.thread is thread]
        return f"chunk {running[0].item.chunk.id}" if running and running[0] else "no chunk"

    def _live_slots(self) -> list[Slot]:
        with self._lock:
            return list(self._slots)

    def _retire_slot(self, abandoned: Slot) -> None:
        """Forget a slot the watchdog abandoned: stop() need not wait for its thread."""
        with self._lock:
            if abandoned in self._slots:
                self._slots.remove(abandoned)
            if abandoned.thread in self._slot_threads:
                self._slot_threads.remove(abandoned.thread)

    def _replace_slot(self) -> None:
        """A fresh slot in an abandoned one's place, unless the worker is stopping."""
        if not self._stopping.is_set():
            self._start_slot()

    def _release(self, items: list[InFlight]) -> None:
        """Give claimed chunks back, unrun or cancelled, their attempts refunded; one log line."""
        self._held.drop(items)
        for item in items:
            if item.ctx is not None:
                item.ctx._cancel()
        self._claims.give_back([(i.chunk, i.token) for i in items])

    # --- the seven steps --------------------------------------------------------------

    def _step1_precheck(self) -> dict[str, Special]:
        """Before a claim: the fleet's limited or gated dependencies, with their queues (read at
        most every 0.2 s; this process's budgets adopt their shared rows' states then)."""
        return self._claims.special()

    def _step2_claim(self, batch: int, special: dict[str, Special]) -> list[InFlight]:
        """Lease up to `batch` runnable chunks of the kinds this worker has handlers for."""
        leases = self._claims.claim(
            self.registry.kinds(), batch, queue_id=self.queue_id, special=special
        )
        now = time.monotonic()  # a chunk's reserved rate unit falls due its delay from now
        items: list[InFlight] = []
        for lease in leases:
            token, probe, spacing, delays = lease.token, lease.probe, lease.spacing, lease.delays
            if delays:
                items += [
                    InFlight(c, token, None, probe, now + lease.delay(i), spacing)
                    for i, c in enumerate(lease.chunks)
                ]
            else:  # by position, without a delay looked up per chunk: most claims are not paced
                items += [InFlight(c, token, None, probe, now, spacing) for c in lease.chunks]
        if not self._held.hold(items):  # the stop gave back what the slots held meanwhile
            self._release(items)
            return []
        return items

    def _run_one(self, item: InFlight, this: Slot) -> Report | None:
        """Steps 3 to 6 for one chunk; its report is written by step 7 with its batch."""
        report = None
        try:
            queue = self._queue(item.chunk.queue_id)
            source, budget = self._route(queue)
            gate, hold_s = self._step3_gate(budget, item)
            if gate is Gate.HOLD:
                result, row = attempt.held(item.chunk, self.id, hold_s, time_scale=self.time_scale)
                return Report(item.chunk, item.token, result, row)
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
                dependency=self._dependency_of_queue.get(queue.id),
                limits=self._claims,
            )
            item.ctx = ctx
            size, probe = source.chunk_size(item.chunk.payload), gate is Gate.PROBE
            running = Running(item, ctx, budget, started, deadline, size, probe)
            handler = source.process
            isolated = self.isolate.get(source.kind)
            if isolated is not None:
                handler = functools.partial(run_isolated, source.process, timeout_s=isolated)
            error = self._step3_process(this, running, handler)
            if error is ABANDONED:
                return None
            report = self._conclude(running, error)
        except BackendError as exc:
            # Nothing can be written now; the lease will expire and recovery takes over.
            log.error("chunk %s: database error: %s", item.chunk.id, redact(str(exc)))
        except ChunksyncError as exc:  # e.g. no source for the queue's kind
            message = redact(str(exc))
            log.error("chunk %s cannot be processed: %s", item.chunk.id, message)
            result, row = attempt.setup_failure(item.chunk, self.id, message)
            report = Report(item.chunk, item.token, result, row)
        self.processed += 1
        return report

    def _step3_gate(self, budget: RetryBudget, item: InFlight) -> tuple[Gate, float]:
        """Step 3's pre-condition: the claim asked the shared gate already (a probe was claimed
        as such); a chunk whose dependency stopped flowing since it was claimed is held (for
        the seconds returned), not called."""
        if item.probe:
            return Gate.PROBE, 0.0
        if budget.flowing:
            return Gate.CLOSED, 0.0
        return Gate.HOLD, hold_delay(budget, self.rng)

    def _step3_process(
        self, this: Slot, running: Running, handler: Callable[[ChunkContext], int | None]
    ) -> BaseException | None:
        """Run the handler on this slot's thread (a hand-off to another thread per chunk cost a
        fifth of a quick chunk). The watchdog enforces the timeout; when it has, the result is
        void and `ABANDONED` is returned."""
        ctx = running.ctx
        with this.lock:
            this.running = running
        try:
            done = asyncrun.call(handler, ctx)  # an `async def` one runs on the slot's loop
            ctx.items_processed = attempt.counted(done, ctx.items_processed)
            error: BaseException | None = None
        except Exception as exc:
            error = exc
        with this.lock:
            if this.abandoned:
                return ABANDONED
            this.running = None  # returned in time: the watchdog leaves this chunk alone
            return error

    def _conclude(self, running: Running, error: BaseException | None) -> Report:
        """Steps 4 to 6 for a chunk whose handler returned, raised or timed out."""
        failure = None if error is None else self._step4_analyze(error)
        return self._step6_decide(running, failure, self._step5_measure(running))

    def _step4_analyze(self, error: BaseException) -> Failure:
        """Categorize the failure and word its stored message (redacted, bounded): a step of
        its own so that each of the seven has its name, though its rules are all in
        `attempt.analyze`."""
        return attempt.analyze(error)

    def _step5_measure(self, running: Running) -> Attempt:
        """The attempt's metrics row: its time (measured here), items, efficiency, memory."""
        elapsed = time.monotonic() - running.started
        ctx = running.ctx
        queue_id = ctx.chunk.queue_id
        row = attempt.measured(
            ctx.chunk,
            self.id,
            size=running.size,
            items=ctx.items_processed,
            elapsed_s=elapsed,
            median_items_per_s=self._efficiency.median(queue_id),
            rss_bytes=rss_bytes(),
        )
        self._efficiency.add(queue_id, row.items_per_s)
        return row

    def _step6_decide(self, running: Running, failure: Failure | None, row: Attempt) -> Report:
        """Apply the rules of chunksync.runtime.attempt: the result and the row that says so."""
        item = running.item
        if failure is None:  # as measured: no copy
            return Report(
                item.chunk,
                item.token,
                attempt.completed(running.budget, row.items_processed, probe=running.probe),
                row,
            )
        result, policy_delay_s = attempt.decide(
            item.chunk,
            failure,
            self.registry.policy(running.ctx.queue.policy),
            running.budget,
            items=row.items_processed,
            probe=running.probe,
            time_scale=self.time_scale,
            rng=self.rng,
        )
        return Report(
            item.chunk, item.token, result, attempt.failed_row(row, result, failure, policy_delay_s)
        )

    def _step7_report(self, reports: Reports) -> None:
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
        self._held.drop(item for item, _ in reports)
        # What the batch charged, to its dependencies' shared rows.
        self._claims.report(self._dependency_of_queue.get(i.chunk.queue_id) for i, _ in reports)
        if any(r.result.status is ChunkStatus.PENDING for _, r in reports):
            self._wake.set()

    # --- helpers -----------------------------------------------------------------

    def _route(self, queue: Queue) -> tuple[Source, RetryBudget]:
        """The queue's source and its dependency's budget, worked out once per queue."""
        found = self._routes.get(queue.id)
        if found is None:
            source = self.registry.source_for(queue)
            stress = self.registry.policy(queue.policy).stress
            dependency = source.dependency(queue.source)
            budget = self._claims.budget(dependency, stress)
            found = self._routes[queue.id] = (source, budget)
            self._dependency_of_queue[queue.id] = dependency
            self._budget_of_queue[queue.id] = budget
        return found

    def _queue(self, queue_id: str) -> Queue:
        queue = self._queues.get(queue_id)
        if queue is None:
            queue = self._queues[queue_id] = self.manager.queue_row(queue_id)
        return queue

    def _policy_for_queue(self, queue_id: str) -> RetryPolicy:
        return self.registry.policy(self._queue(queue_id).policy)

    def _count_recoveries(self, recovered: list[Recovery]) -> None:
        self.recoveries += len(recovered)

    def _idle_wait_s(self) -> float:
        """Until the next poll, or sooner when a shut gate's next probe or a rate limit's next
        unit falls due first."""
        now = time.monotonic()
        probes = [b.next_probe_at() for b in list(self._budget_of_queue.values())]
        due = [t for t in probes if t is not None]
        claim_in = self._claims.next_claim_in()
        if claim_in is not None:
            due.append(now + claim_in)
        if not due:
            return self.poll_s
        return max(0.0, min(self.poll_s, min(due) - now))
