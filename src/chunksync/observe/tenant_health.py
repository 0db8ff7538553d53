"""One tenant's health, and the per-tenant figures Prometheus sees with bounded cardinality.

`tenant_summary` answers `chunksync health --tenant T`: the same backlog, age, stuck, dead and
error-rate measures as the system summary, counted over that tenant's queues only, judged by the
same `assess` (workers and dependencies are shared by every tenant, so those come from the
system's summary), plus what the tenant has in flight against its quota. Its reads are
tenant-scoped named queries through indexes that start with the tenant.

`top_tenants` folds every tenant's figures into the N with the largest backlog, by name, and
one "other" that sums the rest: a label per tenant would let one deployment with thousands of
tenants make thousands of series per metric, which Prometheus stores (and charges) each.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from chunksync.backends.base import Backend
from chunksync.exceptions import NotFound
from chunksync.manager import Manager
from chunksync.observe.model import (
    FAILED_OUTCOMES,
    LONG_WINDOW_SECONDS,
    SHORT_WINDOW_SECONDS,
    HealthState,
    HealthThresholds,
    SystemSummary,
    assess,
)

OTHER = "other"  # the label of every tenant past the top N
DEFAULT_TOP_TENANTS = 20


@dataclass(frozen=True, slots=True)
class TenantSummary:
    """One tenant's health: its queues' backlog and failures, and its chunks against quotas."""

    tenant: str
    state: HealthState
    reasons: list[str]
    queues: int
    active_queues: int
    backlog: int
    oldest_pending_age_s: float | None
    in_flight: int
    max_in_flight: int | None
    max_queued: int | None
    stuck: int
    dead: int
    recoveries_60m: int
    attempts_5m: int
    attempts_60m: int
    error_rate_5m: float | None
    error_rate_60m: float | None
    top_failure_categories: list[tuple[str, int]]

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["state"] = self.state.value
        return data


def _window(backend: Backend, tenant: str, window_s: float) -> tuple[int, int, Counter[str]]:
    """The tenant's attempts, failures and failures by category over the last window_s."""
    attempts = failures = 0
    categories: Counter[str] = Counter()
    params = {"tenant": tenant, "window_s": window_s}
    for r in backend.fetch_all("tenant_health_window", params):
        n = int(r["n"])
        attempts += n
        if r["outcome"] in FAILED_OUTCOMES:
            failures += n
            if r["category"]:
                categories[r["category"]] += n
    return attempts, failures, categories


def tenant_summary(
    manager: Manager, tenant: str, system: SystemSummary, t: HealthThresholds | None = None
) -> TenantSummary:
    """`tenant`'s health; a tenant neither declared nor owning a queue is not found."""
    t = t or system.thresholds
    backend = manager.backend
    row = backend.fetch_one("tenant_health", {"tenant": tenant, "window_s": LONG_WINDOW_SECONDS})
    assert row is not None
    if not int(row["queues"] or 0) and not int(row["declared"] or 0):
        raise NotFound(f"no tenant '{tenant}': it owns no queue and is not declared")
    n5, f5, _ = _window(backend, tenant, SHORT_WINDOW_SECONDS)
    n60, f60, cats = _window(backend, tenant, LONG_WINDOW_SECONDS)
    backlog, stuck = int(row["backlog"] or 0), int(row["stuck"] or 0)
    oldest = None if row["oldest_pending_age_s"] is None else float(row["oldest_pending_age_s"])
    rate5 = f5 / n5 if n5 else None
    state, reasons = assess(
        t,
        system.workers_alive,
        backlog,
        oldest,
        n5,
        rate5,
        stuck,
        int(cats["auth"]),
        system.stressed_dependencies,
    )
    return TenantSummary(
        tenant=tenant,
        state=state,
        reasons=reasons,
        queues=int(row["queues"] or 0),
        active_queues=int(row["active_queues"] or 0),
        backlog=backlog,
        oldest_pending_age_s=oldest,
        in_flight=int(row["in_flight"] or 0),
        max_in_flight=_opt_int(row["max_in_flight"]),
        max_queued=_opt_int(row["max_queued"]),
        stuck=stuck,
        dead=int(row["dead"] or 0),
        recoveries_60m=int(row["recoveries"] or 0),
        attempts_5m=n5,
        attempts_60m=n60,
        error_rate_5m=rate5,
        error_rate_60m=f60 / n60 if n60 else None,
        top_failure_categories=sorted(cats.items(), key=lambda kv: (-kv[1], kv[0]))[:5],
    )


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


# --- per-tenant metrics, top N plus "other" ------------------------------------------------------


@dataclass(slots=True)
class TenantFigures:
    """What Prometheus sees of one tenant (or of every tenant summed as "other")."""

    chunks: Counter[str] = field(default_factory=Counter)  # by status
    oldest_pending_age_s: float | None = None
    in_flight_quota: int | None = None

    @property
    def backlog(self) -> int:
        return self.chunks["pending"]

    @property
    def in_flight(self) -> int:
        return self.chunks["processing"]

    def merge(self, other: TenantFigures) -> None:
        """Add `other` in: counts sum, the backlog's age is the oldest; quotas do not add up
        into a meaningful figure, so a merged group has none."""
        self.chunks.update(other.chunks)
        ages = [a for a in (self.oldest_pending_age_s, other.oldest_pending_age_s) if a is not None]
        self.oldest_pending_age_s = max(ages) if ages else None
        self.in_flight_quota = None


def tenant_figures(backend: Backend) -> dict[str, TenantFigures]:
    """Every tenant with chunks or an in-flight quota, from two grouped reads."""
    found: dict[str, TenantFigures] = {}
    for r in backend.fetch_all("metrics_tenants"):
        figures = found.setdefault(str(r["tenant"]), TenantFigures())
        figures.chunks[str(r["status"])] += int(r["n"])
        if r["oldest_pending_age_s"] is not None:
            figures.oldest_pending_age_s = float(r["oldest_pending_age_s"])
    for r in backend.fetch_all("metrics_tenant_quotas"):
        found.setdefault(str(r["id"]), TenantFigures()).in_flight_quota = int(r["max_in_flight"])
    return found


def top_tenants(figures: dict[str, TenantFigures], n: int) -> dict[str, TenantFigures]:
    """The `n` tenants with the largest backlog (ties by name) under their own names, and the
    rest summed as "other" (present only when some tenant is left over). A tenant really named
    "other" is folded into the group too, so that the label means one thing."""
    ranked = sorted(figures.items(), key=lambda kv: (-kv[1].backlog, kv[0]))
    named = [(name, f) for name, f in ranked if name != OTHER][: max(n, 0)]
    shown = dict(named)
    rest = [f for name, f in ranked if name not in shown]
    if rest:
        other = TenantFigures()
        for f in rest:
            other.merge(f)
        shown[OTHER] = other
    return shown


def totals(figures: Iterable[TenantFigures]) -> Counter[str]:
    """Chunks by status summed over tenants (the top N and "other" add up to the same)."""
    out: Counter[str] = Counter()
    for f in figures:
        out.update(f.chunks)
    return out
