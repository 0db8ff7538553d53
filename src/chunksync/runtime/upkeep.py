"""Upkeep: the duties of a worker process besides chunks, on one thread with a timer each.

- the stuck-chunk sweep (recovery), every poll interval but no oftener than a tenth of the lease
  (`recovery_every_s`), by the maintenance leader;
- the stress feed, every `Settings.stress_feed_every_s`, in every process, when the health
  thresholds ask for it (`feed_retry_budgets`): each process's retry budgets learn the failures
  its peers saw;
- alerts, every `Settings.alert_every_s`, and retention, every `Settings.retention_every_s`, by
  the maintenance leader; on the same timer as retention, the attempt rollups past their own,
  longer keep (`Settings.rollup_retention_days`);
- the rollup fold, every ROLLUP_FOLD_EVERY_SECONDS, by the maintenance leader: the attempts
  written since the last fold (a few seconds behind) into the attempt rollups;
- schedules (chunksync.schedules), every SCHEDULE_EVERY_SECONDS, by the maintenance leader: each
  tick that has come is taken once for the fleet and its command started in a child process;
- on PostgreSQL, the chunks still to move to their claim group after a change of a dependency's
  limits whose mover stopped (chunksync.deps.regroup), by the maintenance leader, a turn of
  regroup.REGROUP_TURN_S every NAME_DEPENDENCIES_EVERY_SECONDS.

In the manner of saq's `Worker.upkeep`: the slots that claim and run chunks never do any of this.
A duty that fails is logged and tried again at its next turn; it never stops the worker.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from chunksync import schedules
from chunksync.deps import regroup
from chunksync.deps.store import DependencyStore
from chunksync.exceptions import BackendError
from chunksync.manager import Manager, Recovery
from chunksync.observe import alerts, retention, rollups, trends
from chunksync.observe.model import HealthThresholds
from chunksync.redact import redact
from chunksync.registry import Registry
from chunksync.retry import RetryPolicy
from chunksync.settings import RECOVERY_EVERY_SECONDS, UPKEEP_TICK_SECONDS, Settings

log = logging.getLogger("chunksync.upkeep")

NAME_DEPENDENCIES_EVERY_SECONDS = 10.0


def recovery_every_s(poll_s: float, lease_s: float) -> float:
    """How often the leader sweeps for stuck chunks: every poll interval, but no oftener than a
    tenth of the lease, nor than RECOVERY_EVERY_SECONDS. A chunk is stuck only once its lease
    expired: a sweep every 50 ms under a 30 s lease finds nothing sooner, and it cost every
    process a leader check, and the leader a durable commit, twenty times a second (an idle
    PostgreSQL worker polling every 50 ms: 136 -> 88 ms of CPU in 2.5 s)."""
    return max(poll_s, min(RECOVERY_EVERY_SECONDS, lease_s / 10))


def feed_retry_budgets(
    manager: Manager, registry: Registry, thresholds: HealthThresholds
) -> list[str]:
    """Charge the retry budget of every dependency whose shared error rate says it is stressed,
    just below the budget's stress line. Each process keeps its own token bucket; this lets a
    worker see the failures its peers in other processes saw. Returns the dependencies charged."""
    if not thresholds.feed_retry_budgets:
        return []
    charged = []
    for dep in trends.dependency_health(manager, thresholds, dependency_of=registry.dependency_of):
        if dep.stressed:
            budget = registry.budgets.get(dep.dependency)
            line = budget.config.capacity * budget.config.threshold
            if budget.tokens >= line:
                budget.charge(budget.tokens - line + 1e-6)
                charged.append(dep.dependency)
    return charged


@dataclass(slots=True)
class Timer:
    """A duty and how often it falls due; `last` is the monotonic time it last ran."""

    name: str
    every_s: float
    duty: Callable[[], None]
    leader_only: bool = True
    last: float = -1e18

    def due(self, now: float) -> bool:
        return now - self.last >= self.every_s


class Upkeep:
    """One thread per worker process running each duty on its own timer."""

    def __init__(
        self,
        manager: Manager,
        registry: Registry,
        settings: Settings,
        *,
        worker_id: str,
        recovery_every_s: float,
        worker_timeout_s: float,
        policy_for_queue: Callable[[str], RetryPolicy],
        on_recovered: Callable[[list[Recovery]], None] = lambda _: None,
        tick_s: float = UPKEEP_TICK_SECONDS,
    ) -> None:
        self.manager = manager
        self.registry = registry
        self.settings = settings
        self.worker_id = worker_id
        self.worker_timeout_s = worker_timeout_s
        self.policy_for_queue = policy_for_queue
        self.on_recovered = on_recovered
        self.tick_s = min(tick_s, recovery_every_s)
        self.timers = [
            Timer("recovery", recovery_every_s, self.recover),
            Timer("stress", settings.stress_feed_every_s, self.feed_stress, leader_only=False),
            Timer("alerts", settings.alert_every_s, self.evaluate_alerts),
            Timer("retention", settings.retention_every_s, self.apply_retention),
            Timer("rollups", settings.retention_every_s, self.trim_rollups),
            Timer("fold", rollups.ROLLUP_FOLD_EVERY_SECONDS, self.fold_rollups),
            Timer("dependencies", NAME_DEPENDENCIES_EVERY_SECONDS, self.name_dependencies),
            Timer("regroups", NAME_DEPENDENCIES_EVERY_SECONDS, self.move_regroups),
            Timer("schedules", schedules.SCHEDULE_EVERY_SECONDS, self.run_schedules),
        ]
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._loop, name=f"{self.worker_id}-upkeep", daemon=True
        )
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stopped.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def _loop(self) -> None:
        while not self._stopped.is_set():
            self.run_due()
            self._stopped.wait(self.tick_s)

    def run_due(self, now: float | None = None) -> None:
        """Run every duty that is due (the leader's duties only on the leader)."""
        now = time.monotonic() if now is None else now
        due = [t for t in self.timers if t.due(now)]
        if not due:
            return
        leader = self._is_leader() if any(t.leader_only for t in due) else False
        for timer in due:
            if timer.leader_only and not leader:
                continue
            timer.last = now
            try:
                timer.duty()
            except Exception as exc:  # upkeep must never stop the worker
                log.error("upkeep %s failed: %s", timer.name, redact(str(exc)))

    def _is_leader(self) -> bool:
        try:
            return self.manager.backend.is_maintenance_leader(self.worker_id)
        except BackendError as exc:
            log.error("upkeep: cannot tell the maintenance leader: %s", redact(str(exc)))
            return False

    # --- the duties -------------------------------------------------------------------

    def recover(self) -> None:
        recovered = self.manager.recover_stuck(
            self.worker_id, self.policy_for_queue, worker_timeout_s=self.worker_timeout_s
        )
        for r in recovered:
            log.warning(
                "recovered chunk %s from worker %s: %s -> %s",
                r.chunk_id,
                r.previous_worker,
                r.reason,
                r.to_status,
            )
        if recovered:
            self.on_recovered(recovered)

    def feed_stress(self) -> None:
        for dep in feed_retry_budgets(self.manager, self.registry, self.settings.health):
            log.info("dependency %s is stressed by the shared error rate", dep)

    def evaluate_alerts(self) -> None:
        alerts.evaluate(self.manager, self.settings.alerts)

    def name_dependencies(self) -> None:
        """Queues made before dependencies were rows (or by an older chunksync) get theirs, so
        that their chunks are claimed under its limits and gate."""
        store = DependencyStore(self.manager.backend)
        for row in store.unnamed_queues():
            name = self.registry.dependency_of(str(row["source"]), str(row["kind"]))
            store.name_queue(str(row["id"]), name)
            log.info("queue %s: its dependency is %s", row["id"], name)

    def move_regroups(self) -> None:
        """Go on moving the chunks of a dependency whose limits changed, and of a queue paused
        or resumed, to their claim group, where the process that began it stopped
        (chunksync.deps.regroup), a turn at a time."""
        backend, turn = self.manager.backend, regroup.REGROUP_TURN_S
        moved = regroup.move_due(backend, budget_s=turn)
        moved += regroup.move_queues_due(backend, budget_s=turn)
        if moved:
            log.info("moved %d chunks to their claim groups", moved)

    def run_schedules(self) -> None:
        """Start the command of every schedule whose tick has come (once for the fleet)."""
        backend = self.manager.backend
        for due in schedules.claim_due(backend):
            schedules.launch(backend, due, backend.url)

    def apply_retention(self) -> None:
        done = retention.cleanup(self.manager, self.settings.retention_days * retention.DAY_SECONDS)
        if done.total:
            log.info("retention removed %s", done.as_dict())

    def fold_rollups(self) -> None:
        """New attempts into the rollups, a few seconds behind: readers add the tail past the
        watermark themselves, so this only keeps that tail short."""
        rollups.fold(self.manager)

    def trim_rollups(self) -> None:
        """Attempt rollups past their own (longer) keep go; `fold_rollups` adds the new ones."""
        done = rollups.trim(
            self.manager,
            hour_keep_s=self.settings.rollup_retention_days * rollups.DAY_SECONDS,
            minute_keep_s=self.settings.minute_rollup_keep_s,
        )
        if done.total:
            log.info("rollup retention removed %s", done.as_dict())
