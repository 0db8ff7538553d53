"""Prometheus metrics, read from the shared database at scrape time.

Workers run in several processes, often on several machines; in-process counters would each
see a slice, reset on every restart, and need a push gateway or multiprocess files to add up.
The database already holds one row per attempt, the audit log and the workers' heartbeats, so a
collector that reads them when Prometheus scrapes reports the whole fleet from any process, with
nothing to aggregate. Counters count the rows retention has kept (RETENTION_DAYS): when retention
deletes old rows a counter drops, which Prometheus's rate() treats as a counter reset.

The dependencies' shared state (slots, tokens, gate, limits, waits and probes) comes from
their rows, which every worker updates in the transaction of its claim.

Per-tenant series (chunks by status, backlog age, in flight against the quota) carry a tenant
label for the top N tenants by backlog only (N from CHUNKSYNC_METRICS_TENANTS, default 20); the
rest are summed under tenant="other", so the number of series stays bounded however many
tenants there are (chunksync.observe.tenant_health). Per-queue series (the backlog, the
recommended workers) likewise name the top N queues (CHUNKSYNC_METRICS_QUEUES, default 100)
and sum the rest under queue="other", one series for each of their other labels' values: at
5,000 tenants' ten folders they were 100,000 series and a 6 s scrape. So do the dependencies'
(CHUNKSYNC_METRICS_DEPENDENCIES, default 100; the gated and the busiest named): 5,000 accounts'
caps were 50,000 series.

Exposed by the dashboard at /metrics, or by `render()` anywhere else.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from chunksync.deps import view
from chunksync.deps.store import Dependency
from chunksync.exceptions import ConfigurationError
from chunksync.manager import Manager
from chunksync.models import ChunkStatus, Outcome
from chunksync.observe import capacity
from chunksync.observe.tenant_health import DEFAULT_TOP_TENANTS, tenant_figures, top_tenants
from chunksync.redact import redact

WORKER_TIMEOUT_SECONDS = 60.0
TOP_TENANTS_ENV = "CHUNKSYNC_METRICS_TENANTS"  # tenants labelled by name; the rest are "other"
TOP_QUEUES_ENV = "CHUNKSYNC_METRICS_QUEUES"  # queues labelled by name; the rest are "other"
DEFAULT_TOP_QUEUES = 100
TOP_DEPENDENCIES_ENV = "CHUNKSYNC_METRICS_DEPENDENCIES"  # likewise dependencies
DEFAULT_TOP_DEPENDENCIES = 100
OTHER = "other"
Series = tuple[tuple[str, ...], float]  # a series' label values and its value
# The upper bounds of metrics_processing_buckets in queries_health.sql, in the same order.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


class DatabaseCollector(Collector):
    """Every chunksync metric, computed from the database when collected."""

    def __init__(
        self,
        manager: Manager,
        worker_timeout_s: float = WORKER_TIMEOUT_SECONDS,
        top_tenants: int = DEFAULT_TOP_TENANTS,
        top_queues: int = DEFAULT_TOP_QUEUES,
        top_dependencies: int = DEFAULT_TOP_DEPENDENCIES,
    ) -> None:
        self.manager = manager
        self.worker_timeout_s = worker_timeout_s
        self.top_tenants = top_tenants
        self.top_queues = top_queues
        self.top_dependencies = top_dependencies

    def collect(self) -> Iterator[Metric]:
        backend = self.manager.backend
        processed = CounterMetricFamily(
            "chunksync_chunks_processed",
            "Attempts recorded, by outcome and error category.",
            labels=["outcome", "category"],
        )
        retries = deferrals = 0
        seconds: dict[str, float] = defaultdict(float)
        for r in backend.fetch_all("metrics_attempts"):
            n = int(r["n"])
            processed.add_metric([str(r["outcome"]), str(r["category"] or "none")], n)
            retries += n if r["outcome"] == Outcome.RETRIED else 0
            deferrals += n if r["outcome"] == Outcome.DEFERRED else 0
            if r["outcome"] != Outcome.STUCK:
                seconds[str(r["outcome"])] += float(r["processing_s"] or 0.0)
        yield processed
        yield CounterMetricFamily("chunksync_retries", "Attempts that will run again.", retries)
        yield CounterMetricFamily(
            "chunksync_deferrals",
            "Attempts deferred while their dependency was stressed.",
            deferrals,
        )
        yield self._histogram(seconds)
        row = backend.fetch_one("metrics_gauges", {"worker_timeout_s": self.worker_timeout_s})
        assert row is not None
        yield CounterMetricFamily(
            "chunksync_recoveries", "Stuck chunks recovered.", int(row["recoveries"] or 0)
        )
        yield GaugeMetricFamily(
            "chunksync_workers_alive", "Workers heartbeating now.", int(row["workers_alive"] or 0)
        )
        backlog = GaugeMetricFamily(
            "chunksync_backlog",
            "Pending chunks per unfinished queue.",
            labels=["queue", "queue_id", "status"],
        )
        pending: list[Series] = [
            ((str(r["name"]), str(r["id"]), str(r["status"])), float(r["pending"]))
            for r in backend.fetch_all("metrics_backlog")
        ]
        for labels, value in top_series(pending, self.top_queues, lambda q: (OTHER, "", q[2])):
            backlog.add_metric(list(labels), int(value))
        yield backlog
        if backend.claim_groups:
            moving = GaugeMetricFamily(
                "chunksync_queue_chunks_moving_seconds",
                "Seconds since a pause or a resume began moving the queue's open chunks to "
                "another claim group, while the move lasts (PostgreSQL).",
                labels=["queue", "queue_id"],
            )
            for r in backend.fetch_all("pg_queue_regroups_due"):
                moving.add_metric([redact(str(r["name"])), str(r["id"])], float(r["moving_s"]))
            yield moving
        yield from tenant_metrics(self.manager, self.top_tenants)
        yield from dependency_metrics(self.manager, self.top_dependencies)
        yield from capacity_metrics(self.manager, self.worker_timeout_s, self.top_queues)

    def _histogram(self, seconds: dict[str, float]) -> HistogramMetricFamily:
        counts: dict[str, list[int]] = defaultdict(lambda: [0] * (len(BUCKETS) + 1))
        for r in self.manager.backend.fetch_all("metrics_processing_buckets"):
            counts[str(r["outcome"])][int(r["bucket"])] += int(r["n"])
        family = HistogramMetricFamily(
            "chunksync_processing_seconds",
            "Processing time of each attempt, by outcome.",
            labels=["outcome"],
        )
        for outcome, per_bucket in sorted(counts.items()):
            cumulative, running = [], 0
            for bound, n in zip((*map(str, BUCKETS), "+Inf"), per_bucket, strict=True):
                running += n
                cumulative.append((bound, float(running)))
            family.add_metric([outcome], cumulative, seconds.get(outcome, 0.0))
        return family


def tenant_metrics(manager: Manager, top: int) -> Iterator[Metric]:
    """Chunks by status, backlog age and in flight against the quota, per tenant: the `top` by
    backlog by name, the rest summed as tenant="other" (the sums equal the totals)."""
    chunks = GaugeMetricFamily(
        "chunksync_tenant_chunks",
        "Chunks per tenant (top N by backlog, the rest as other), by status.",
        labels=["tenant", "status"],
    )
    age = GaugeMetricFamily(
        "chunksync_tenant_backlog_age_seconds",
        "Age of the tenant's oldest pending chunk (other: the oldest of the rest).",
        labels=["tenant"],
    )
    in_flight = GaugeMetricFamily(
        "chunksync_tenant_in_flight", "Chunks of the tenant processing now.", labels=["tenant"]
    )
    quota = GaugeMetricFamily(
        "chunksync_tenant_in_flight_quota",
        "The tenant's cap on chunks in flight (only tenants shown by name that have one).",
        labels=["tenant"],
    )
    for tenant, figures in top_tenants(tenant_figures(manager.backend), top).items():
        name = tenant  # ids, not secrets: redacting could merge two into one series
        for status in ChunkStatus:
            chunks.add_metric([name, status.value], figures.chunks[status.value])
        if figures.oldest_pending_age_s is not None:
            age.add_metric([name], max(figures.oldest_pending_age_s, 0.0))
        in_flight.add_metric([name], figures.in_flight)
        if figures.in_flight_quota is not None:
            quota.add_metric([name], figures.in_flight_quota)
    yield from (chunks, age, in_flight, quota)


def dependency_metrics(manager: Manager, top: int = DEFAULT_TOP_DEPENDENCIES) -> Iterator[Metric]:
    """The shared state of the `top` dependency rows by concern (the gated, the busiest:
    view.by_concern), labelled by their (redacted) names; the rest summed under
    dependency="other" where a sum means something (slots in use, gated, waits, probes; a
    counter of "other" drops when a dependency leaves it for a name). Limits a dependency does
    not have are left out rather than shown as 0."""
    label = ["dependency"]
    gauges = {
        name: GaugeMetricFamily(f"chunksync_dependency_{name}", text, labels=label)
        for name, text in (
            ("slots_in_use", "Slots in use: chunks in flight plus extra slots they hold."),
            ("connections_limit", "The dependency's connection cap, for the whole fleet."),
            ("tokens", "Tokens left in the dependency's shared retry budget."),
            ("gated", "1 while the gate holds calls (probing or stopped), else 0."),
            ("rate_limit_per_second", "The dependency's rate limit, in calls per second."),
            (
                "chunks_moving_seconds",
                "Seconds since a change of the dependency's limits began moving its open chunks "
                "to another claim group, while the move lasts (PostgreSQL).",
            ),
        )
    }
    waits = CounterMetricFamily(
        "chunksync_dependency_waits",
        "Claims that waited for the dependency, by what held them.",
        labels=["dependency", "reason"],
    )
    probes = CounterMetricFamily(
        "chunksync_dependency_probes", "Probes the gate let through.", labels=label
    )
    now = manager.now()
    ranked = view.by_concern(view.listed(manager.backend))
    named = [d for d in ranked if d.name != OTHER][: max(top, 0)]
    shown = {d.name for d in named}
    rest = [d for d in ranked if d.name not in shown]
    for dep in named:
        name = [redact(dep.name)]
        gauges["slots_in_use"].add_metric(name, dep.slots_in_use)
        gauges["tokens"].add_metric(name, dep.state.tokens)
        gauges["gated"].add_metric(name, int(dep.state.gated))
        if dep.limits.connections is not None:
            gauges["connections_limit"].add_metric(name, dep.limits.connections)
        if dep.limits.rate is not None:
            gauges["rate_limit_per_second"].add_metric(name, dep.limits.rate.per_s)
        if dep.regroup_since is not None:
            moving_s = max(0.0, now - dep.regroup_since)
            gauges["chunks_moving_seconds"].add_metric(name, moving_s)
        for reason, n in (
            ("connections", dep.cap_waits),
            ("rate", dep.rate_waits),
            ("gate", dep.gate_waits),
        ):
            waits.add_metric([*name, reason], n)
        probes.add_metric(name, dep.probes)
    if rest:
        _fold_dependencies(rest, gauges, waits, probes)
    yield from gauges.values()
    yield waits
    yield probes


def _fold_dependencies(
    rest: list[Dependency],
    gauges: dict[str, GaugeMetricFamily],
    waits: CounterMetricFamily,
    probes: CounterMetricFamily,
) -> None:
    """The dependencies not named, summed under dependency="other" where a sum means something."""
    gauges["slots_in_use"].add_metric([OTHER], sum(d.slots_in_use for d in rest))
    gauges["gated"].add_metric([OTHER], sum(int(d.state.gated) for d in rest))
    for reason, n in (
        ("connections", sum(d.cap_waits for d in rest)),
        ("rate", sum(d.rate_waits for d in rest)),
        ("gate", sum(d.gate_waits for d in rest)),
    ):
        waits.add_metric([OTHER, reason], n)
    probes.add_metric([OTHER], sum(d.probes for d in rest))


def capacity_metrics(
    manager: Manager, worker_timeout_s: float, top_queues: int = DEFAULT_TOP_QUEUES
) -> Iterator[Metric]:
    """Scaling advice and objectives: what an autoscaler (KEDA, an HPA) scales on. The sum of
    the recommended workers, by verdict or in all, is the same however many queues are named."""
    recommended = GaugeMetricFamily(
        "chunksync_recommended_workers",
        "Worker slots that keep the queue's p95 wait within its objective (scale-advice).",
        labels=["queue", "verdict"],
    )
    slots: list[Series] = [
        ((advice.subject.removeprefix("queue "), advice.verdict), float(advice.recommended_slots))
        for advice in capacity.scale_advice(manager, worker_timeout_s=worker_timeout_s)
    ]
    for queue_verdict, n_slots in top_series(slots, top_queues, lambda q: (OTHER, q[1])):
        recommended.add_metric(list(queue_verdict), int(n_slots))
    yield recommended
    budget = GaugeMetricFamily(
        "chunksync_slo_error_budget_left",
        "Share of the objective's error budget not yet spent over its period.",
        labels=["subject", "objective"],
    )
    burn = GaugeMetricFamily(
        "chunksync_slo_burn_rate",
        "How fast the objective spends its budget (1: exactly over its period), per window.",
        labels=["subject", "objective", "window"],
    )
    for status in capacity.slo_report(manager):
        labels = [status.subject, status.objective]
        if status.budget_left is not None:
            budget.add_metric(labels, status.budget_left)
        for window, value in (("1h", status.burn_fast), ("6h", status.burn_slow)):
            if value is not None:
                burn.add_metric([*labels, window], value)
    yield budget
    yield burn


def top_series(
    series: Sequence[Series], n: int, fold: Callable[[tuple[str, ...]], tuple[str, ...]]
) -> list[Series]:
    """The `n` series of the largest values (ties by their labels) as they are, and the rest
    summed into the series `fold` gives each (its first label "other"): sums over any label
    stay what they were. A queue really named "other" is folded too, so the label means one
    thing (as tenant_health.top_tenants does for tenants)."""
    ranked = sorted(series, key=lambda s: (-s[1], s[0]))
    named = [s for s in ranked if s[0][0] != OTHER][: max(n, 0)]
    shown = {labels for labels, _ in named}
    rest: dict[tuple[str, ...], float] = defaultdict(float)
    for labels, value in ranked:
        if labels not in shown:
            rest[fold(labels)] += value
    return named + sorted(rest.items())


def count_setting(env: str, default: int) -> int:
    """A whole number of 0 or more from the environment variable `env`, else `default`."""
    text = os.environ.get(env, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise ConfigurationError(f"{env} must be a whole number of 0 or more")
    return value


def top_tenants_setting() -> int:
    """How many tenants the metrics name, from CHUNKSYNC_METRICS_TENANTS (default 20)."""
    return count_setting(TOP_TENANTS_ENV, DEFAULT_TOP_TENANTS)


def registry(
    manager: Manager,
    top_tenants: int | None = None,
    top_queues: int | None = None,
    top_dependencies: int | None = None,
) -> CollectorRegistry:
    """A registry holding only the database collector (no process metrics of this process).
    How many tenants, queues and dependencies it names: as given, else from the environment."""
    found = CollectorRegistry(auto_describe=False)
    tenants = top_tenants_setting() if top_tenants is None else top_tenants
    queues = count_setting(TOP_QUEUES_ENV, DEFAULT_TOP_QUEUES) if top_queues is None else top_queues
    deps = (
        count_setting(TOP_DEPENDENCIES_ENV, DEFAULT_TOP_DEPENDENCIES)
        if top_dependencies is None
        else top_dependencies
    )
    found.register(
        DatabaseCollector(manager, top_tenants=tenants, top_queues=queues, top_dependencies=deps)
    )
    return found


def render(
    manager: Manager,
    top_tenants: int | None = None,
    top_queues: int | None = None,
    top_dependencies: int | None = None,
) -> tuple[bytes, str]:
    """The exposition text and its content type."""
    found = registry(manager, top_tenants, top_queues, top_dependencies)
    return generate_latest(found), CONTENT_TYPE_LATEST
