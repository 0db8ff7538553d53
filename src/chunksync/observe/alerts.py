"""Alerts: rules over the health answers that fire once per condition until it resolves.

Rules: `error_rate` (the 5-minute error rate past a threshold), `dead_chunks` (a queue has dead
chunks), `backlog_sla` (a queue's oldest pending chunk is older than the queue's SLA),
`no_workers` (chunks wait and no worker is alive), `auth_failures` (a queue failed to
authenticate in the last hour), `dependency_gated` (a dependency's shared gate has held its
calls, probing or stopped, for longer than `dependency_gated_s`; resolved when calls flow),
`slo_burn` (a queue's objective burns its error budget on both windows of a pair), and
`degradation` / `new_error_pattern` (chunksync.observe.degradation, with their evidence).

The state lives in the database (table `alerts`, keyed by rule and subject), so several
processes never announce the same alert twice: firing is an upsert that changes a row only when
the alert was not already firing, and only the process whose statement changed it notifies.
Notifications go to the log and, optionally, to a webhook (a JSON POST through chunksync.webhooks:
signed with CHUNKSYNC_ALERT_WEBHOOK_SECRET when set, retried on the project's own RetryPolicy
backoff, on a background thread so maintenance never waits). More than STORM changes of one
rule in one evaluation are announced as one event that counts them (`grouped`).
Evaluated by the maintenance leader (see chunksync.runtime.upkeep) or on demand.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from chunksync import webhooks
from chunksync.deps import view
from chunksync.exceptions import ConfigurationError
from chunksync.manager import Manager
from chunksync.observe import capacity, health
from chunksync.observe.model import HealthThresholds
from chunksync.redact import redact, redact_url
from chunksync.retry import DEFAULT_POLICY, RetryPolicy

log = logging.getLogger("chunksync.observe.alerts")

WEBHOOK_ENV = "CHUNKSYNC_ALERT_WEBHOOK"
WEBHOOK_ATTEMPTS = 4
WEBHOOK_TIMEOUT_SECONDS = 5.0
AUTH_WINDOW_SECONDS = 3600.0
# More alerts of one rule than this changing in one evaluation are announced as one: a
# provider's outage puts every tenant's queue in `auth_failures` at once (50,000 queues: as
# many log lines and webhook posts, each on a thread of its own).
STORM = 10
RULES = (
    "error_rate",
    "dead_chunks",
    "backlog_sla",
    "no_workers",
    "auth_failures",
    "dependency_gated",
    "slo_burn",
    "degradation",
    "new_error_pattern",
)


@dataclass(frozen=True, slots=True)
class Condition:
    """A rule that holds now, for one subject (a queue id, or None for the whole system)."""

    rule: str
    subject: str | None
    severity: str  # "warning" or "critical"
    message: str

    @property
    def key(self) -> str:
        return self.rule if self.subject is None else f"{self.rule}:{self.subject}"


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """An alert that this evaluation fired or resolved (each is announced once)."""

    key: str
    rule: str
    subject: str | None
    severity: str
    state: str  # "firing" or "resolved"
    message: str
    count: int = 1  # more than one: the alerts of one rule that changed together (`grouped`)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class AlertConfig:
    thresholds: HealthThresholds = field(default_factory=HealthThresholds)
    webhook_url: str | None = None
    policy: RetryPolicy = DEFAULT_POLICY

    def checked(self) -> AlertConfig:
        """This configuration, once its webhook is known to be an http(s) URL."""
        if self.webhook_url and not self.webhook_url.startswith(("http://", "https://")):
            raise ConfigurationError(
                f"alert webhook '{redact_url(self.webhook_url)}' must be http:// or https://"
            )
        return self


def set_queue_sla(manager: Manager, queue: str, sla_s: float | None) -> None:
    """Give a queue (id or name) a backlog SLA in seconds, or none with None."""
    if sla_s is not None and not sla_s > 0:
        raise ConfigurationError("a queue's SLA must be a positive number of seconds")
    q = manager.get_queue(queue)
    manager.backend.execute("health_set_queue_sla", {"id": q.id, "sla_s": sla_s})


def conditions(manager: Manager, thresholds: HealthThresholds) -> list[Condition]:
    """Every rule that holds now."""
    t = thresholds
    found: list[Condition] = []
    system = health.system_summary(manager, t)
    rate, n = system.error_rate_5m, system.attempts_5m
    if rate is not None and n >= t.min_attempts and rate >= t.error_rate_degraded:
        severity = "critical" if rate >= t.error_rate_critical else "warning"
        text = f"{rate:.0%} of {n} attempts failed in the last 5 minutes"
        found.append(Condition("error_rate", None, severity, text))
    if system.backlog and system.workers_alive == 0:
        text = f"no live workers while {system.backlog} chunks wait"
        found.append(Condition("no_workers", None, "critical", text))
    for r in manager.backend.fetch_all("health_queues_dead"):
        text = f"queue {r['name']} has {int(r['n'])} dead chunk(s)"
        found.append(Condition("dead_chunks", str(r["id"]), "warning", text))
    for r in manager.backend.fetch_all("health_queue_slas"):
        age, sla = r["oldest_pending_age_s"], float(r["sla_s"])
        if age is not None and float(age) > sla:
            waited = f"the oldest pending chunk waited {float(age):.0f} s"
            text = f"queue {r['name']}: {waited} (SLA {sla:g} s)"
            found.append(Condition("backlog_sla", str(r["id"]), "warning", text))
    rows = manager.backend.fetch_all(
        "health_queue_auth_failures", {"window_s": AUTH_WINDOW_SECONDS}
    )
    for r in rows:
        text = f"queue {r['name']}: {int(r['n'])} authentication failure(s) in the last hour"
        found.append(Condition("auth_failures", str(r["queue_id"]), "critical", text))
    return found + gated_dependencies(manager, t) + objective_conditions(manager)


def objective_conditions(manager: Manager) -> list[Condition]:
    """Burn-rate alerts of each queue's objectives, and each queue's performance degradation
    or new error pattern, with their evidence in the message (chunksync.observe.capacity)."""
    found: list[Condition] = []
    for status in capacity.slo_report(manager):
        for a in status.alerts:
            subject = f"{status.subject}:{status.objective}:{a['window']}"
            found.append(Condition("slo_burn", subject, str(a["severity"]), str(a["message"])))
    for evidence in capacity.degradations(manager):
        found.append(Condition(evidence.rule, evidence.subject, "warning", evidence.message))
    return found


def gated_dependencies(manager: Manager, t: HealthThresholds) -> list[Condition]:
    """Dependencies gated for longer than `dependency_gated_s`: probing (the dependency keeps
    failing: critical) or stopped (an operator closed it: a warning, lest it be forgotten)."""
    found = []
    now = manager.now()
    for dep in view.listed(manager.backend):
        held = view.gated_for(dep, now)
        if held is None or held <= t.dependency_gated_s:
            continue
        flow = dep.state.flow.value
        severity = "warning" if flow == "stopped" else "critical"
        text = f"dependency {dep.name} has been {flow} for {view.duration(held)}"
        found.append(Condition("dependency_gated", dep.name, severity, text))
    return found


def evaluate(
    manager: Manager,
    config: AlertConfig | None = None,
    *,
    notify: Callable[[AlertEvent], None] | None = None,
    background: bool = True,
) -> list[AlertEvent]:
    """Fire the alerts whose condition holds and resolve those whose condition ended; announce
    each change once (to the log, the webhook, and `notify`; more than STORM of one rule as
    one), the webhook's posts on a thread unless not `background`. Returns the changes."""
    cfg = config or AlertConfig()
    now = {c.key: c for c in conditions(manager, cfg.thresholds)}
    events: list[AlertEvent] = []
    with manager.backend.transaction() as s:
        for c in now.values():
            params = {
                "key": c.key,
                "rule": c.rule,
                "subject": c.subject,
                "severity": c.severity,
                "message": redact(c.message),
            }
            if s.execute("alert_fire", params) == 1:
                events.append(AlertEvent(c.key, c.rule, c.subject, c.severity, "firing", c.message))
            else:  # already firing: its text follows the condition ("7 dead" -> "2 dead")
                del params["rule"], params["subject"]
                s.execute("alert_refresh", params)
        for row in s.fetch_all("alerts_firing"):
            if row["key"] not in now and s.execute("alert_resolve", {"key": row["key"]}) == 1:
                events.append(
                    AlertEvent(
                        str(row["key"]),
                        str(row["rule"]),
                        row["subject"],
                        str(row["severity"]),
                        "resolved",
                        f"resolved: {row['message']}",
                    )
                )
    for event in grouped(events):
        announce(event, cfg, background=background)
        if notify is not None:
            notify(event)
    return events


def grouped(events: list[AlertEvent]) -> list[AlertEvent]:
    """The announcements of these changes: each as it is, but the changes of one rule to one
    state that are more than STORM as one event (key `rule:*`), counting them and naming the
    first few; the worst severity among them. `chunksync alerts` lists each one."""
    by_rule: dict[tuple[str, str], list[AlertEvent]] = {}
    for event in events:
        by_rule.setdefault((event.rule, event.state), []).append(event)
    out: list[AlertEvent] = []
    for (rule, state), group in by_rule.items():
        if len(group) <= STORM:
            out += group
            continue
        worst = "critical" if any(e.severity == "critical" for e in group) else group[0].severity
        first = "; ".join(e.message for e in group[:3])
        text = f"{len(group)} {rule} alerts {state} at once: {first}; ... ('chunksync alerts')"
        out.append(AlertEvent(f"{rule}:*", rule, None, worst, state, text, len(group)))
    return out


def firing(manager: Manager) -> list[dict[str, Any]]:
    return manager.backend.fetch_all("alerts_firing")


def recent(manager: Manager, limit: int = 50) -> list[dict[str, Any]]:
    return manager.backend.fetch_all("alerts_recent", {"limit": limit})


def announce(event: AlertEvent, config: AlertConfig, *, background: bool = True) -> None:
    level = logging.WARNING if event.state == "firing" else logging.INFO
    log.log(level, "alert %s %s: %s", event.key, event.state, redact(event.message))
    if not config.webhook_url:
        return
    if not background:
        post_webhook(config.webhook_url, event, config.policy)
        return
    threading.Thread(
        target=post_webhook,
        args=(config.webhook_url, event, config.policy),
        name="chunksync-alert-webhook",
        daemon=True,
    ).start()


def post_webhook(
    url: str,
    event: AlertEvent,
    policy: RetryPolicy = DEFAULT_POLICY,
    *,
    wait: Callable[[float], object] | None = None,
    attempts: int = WEBHOOK_ATTEMPTS,
) -> bool:
    """POST the event as JSON through the one signed delivery (chunksync.webhooks): signed when
    CHUNKSYNC_ALERT_WEBHOOK_SECRET is set, retried on the policy's backoff. True once delivered."""
    payload = {**event.as_dict(), "message": redact(event.message), "event": "alert"}
    payload["eventId"] = webhooks.event_id("alert", event.key, event.state, time.time_ns())
    secret = webhooks.secret_if_set(webhooks.ALERT_SECRET_ENV)
    return webhooks.post(
        url,
        payload,
        secret=secret,
        policy=policy,
        wait=wait,
        attempts=attempts,
        what="alert webhook",
    )
