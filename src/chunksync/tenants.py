"""Tenants: their weights and quotas, and each chunk's place in the fair order.

Within one priority level, workers are shared among tenants by weight. The share is decided
when chunks are ENQUEUED, not when they are claimed: each tenant keeps a pass per priority (the
virtual time its last chunk finishes, as in stride scheduling and self-clocked fair queuing),
each new chunk takes the next place after it, `1 / weight` apart, and a tenant that was idle
starts from the virtual time (the place of the first chunk waiting at that priority), so that
it neither loses its turn nor banks credit while it had nothing to do. A claim then reads the
`chunks_fair` index in order and stops after what it needs: its cost does not grow with the
number of tenants or with the backlog (docs/tenants.md has the choice and its alternatives).

Quotas: at most `max_in_flight` chunks of a tenant processing across the fleet (the claim
counts them, under the capped tenants' row locks, in the transaction that claims) and at most
`max_queued` waiting (an enqueue beyond it is refused whole). A tenant that is not declared has
the defaults: weight 1, no quota.
"""

from __future__ import annotations

import enum
import hashlib
import json
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from chunksync.backends.base import Backend, Session
from chunksync.exceptions import ConfigurationError, QuotaExceeded
from chunksync.models import Chunk

DEFAULT_WEIGHT = 1.0
# A lower-priority chunk waiting this long is claimed before any other (the aging bound).
AGING_SECONDS = 300.0
# How stale this process's knowledge that some tenant has an in-flight quota may be: a quota
# just set applies to this process's claims within this time (the count itself is never stale).
CAPS_CHECK_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class TenantPolicy:
    """A tenant's weight and quotas (`None`: no quota); the defaults for one never declared."""

    id: str
    weight: float = DEFAULT_WEIGHT
    max_in_flight: int | None = None
    max_queued: int | None = None
    declared: bool = False

    @classmethod
    def from_row(cls, tenant: str, row: Mapping[str, Any] | None) -> TenantPolicy:
        if row is None or row.get("weight") is None:
            return cls(tenant)
        return cls(
            tenant,
            float(row["weight"]),
            _opt_int(row.get("max_in_flight")),
            _opt_int(row.get("max_queued")),
            True,
        )


@dataclass(frozen=True, slots=True)
class TenantLoad:
    """A tenant's policy with its chunks waiting and in flight now (`chunksync tenants`)."""

    policy: TenantPolicy
    pending: int
    in_flight: int


def policy_of(s: Session, tenant: str) -> TenantPolicy:
    return TenantPolicy.from_row(tenant, s.fetch_one("tenant_get", {"id": tenant}))


class Placement:
    """One enqueue's places in the fair order for one tenant at one priority, and the guard of
    its queued quota. Used inside the enqueue's transaction: a refusal rolls back the whole
    enqueue, so nothing is half-written."""

    def __init__(self, s: Session, tenant: str, priority: int) -> None:
        self.s = s
        self.tenant = tenant
        self.priority = priority
        self.policy = policy_of(s, tenant)
        self.queued = 0
        self.reserved = False  # this enqueue holds its pass's row: its next batches follow on
        if self.policy.max_queued is not None:
            # Held until the enqueue commits: two enqueues of one tenant count one after the
            # other (an advisory lock on PostgreSQL: claims, which lock tenants' rows, never wait).
            s.fetch_one("tenant_lock", {"id": tenant})
            row = s.fetch_one("tenant_queued", {"tenant": tenant})
            self.queued = int(row["n"]) if row else 0

    def keys(self, n: int) -> list[float]:
        """The next `n` places of this tenant, after checking its queued quota."""
        limit = self.policy.max_queued
        if limit is not None and self.queued + n > limit:
            raise QuotaExceeded(
                f"tenant '{self.tenant}' may have at most {limit} chunk(s) queued and this "
                f"enqueue would make it {self.queued + n} or more, so nothing was added"
            )
        self.queued += n
        at = None if self.reserved else virtual_time(self.s, self.priority)
        self.reserved = True
        return places(self.s, self.policy, self.priority, n, at=at)


def virtual_time(s: Session, priority: int) -> float:
    """Where the fair order stands at `priority`: the place the plain claim's fair lane has
    reached (docs/tenants.md). A tenant with nothing waiting starts its places there."""
    row = s.fetch_one("fair_virtual_time", {"priority": priority})
    assert row is not None
    return float(row["at"])


def places(
    s: Session, policy: TenantPolicy, priority: int, n: int, *, at: float | None
) -> list[float]:
    """The next `n` places in the fair order of a tenant at one priority, reserved (its pass
    moves on by `n / weight`). An enqueue takes them, and so does a chunk back to pending
    after an attempt (retried, deferred, held): it goes behind the chunks its tenant has
    waiting, as a job retried later sorts behind those due before it, and the tenant is charged
    for the call it used. Keeping its first place, a chunk whose retry is due at once would be
    claimed again before every chunk that waited. `at`: the virtual time (`virtual_time`), or
    None for the places right after those this transaction reserved last for the tenant (an
    enqueue's next batch, as if reserved at once)."""
    stride = 1.0 / policy.weight
    params = {"tenant": policy.id, "priority": priority, "span": n * stride}
    if at is None:
        row = s.fetch_one("tenant_advance", params)
    else:
        row = s.fetch_one("tenant_reserve", {**params, "at": at})
    assert row is not None
    start = float(row["start"])
    return [start + (i + 1) * stride for i in range(n)]


def requeue_places(s: Session, chunks: Sequence[tuple[str, int]]) -> list[float]:
    """Places for chunks back to pending, given as (tenant, priority), in their order."""
    groups: dict[tuple[str, int], list[int]] = {}
    for i, group in enumerate(chunks):
        groups.setdefault(group, []).append(i)
    found = [0.0] * len(chunks)
    # The virtual time once a priority (it may read past the backlog of a tenant at its quota).
    clocks = {priority: virtual_time(s, priority) for priority in {p for _, p in groups}}
    for (tenant, priority), where in sorted(groups.items()):  # one order: no lock cycles
        keys = places(s, policy_of(s, tenant), priority, len(where), at=clocks[priority])
        for i, place in zip(where, keys, strict=True):
            found[i] = place
    return found


def keep_quotas(
    s: Session, list_param: Callable[[Sequence[str]], object], token: str, chunks: list[Chunk]
) -> list[Chunk]:
    """After a claim in this transaction (`token`), its chunks in the claim's order: hold the
    rows of the capped tenants it took chunks of, in one order, then count their chunks in
    flight again, in a statement of its own that sees every claim committed before, and give
    back to pending (their places and the attempt kept) this claim's last chunks of a tenant
    past its quota. Returns the chunks kept.

    The claim counted without a lock, so two claims at once may each have seen room that only
    one of them may take; the second then waits here for the first's commit, and gives back
    what that made too many. Claims of other tenants' chunks never wait for each other (until
    2026-12-06 every claim held every capped tenant's row, and the fleet's claims took turns).
    A claim of the previous release, which holds every capped tenant's row before it counts,
    waits for this one or this one for it, in the same order of rows: no deadlock."""
    tenants = sorted({chunk.tenant for chunk in chunks})
    if not tenants or not s.fetch_all("tenants_lock_claimed", {"tenants": list_param(tenants)}):
        return chunks
    over = {
        str(row["id"]): int(row["over"])
        for row in s.fetch_all("tenants_over_quota", {"tenants": list_param(tenants)})
    }
    if not over:
        return chunks
    back: set[str] = set()
    for chunk in reversed(chunks):
        if over.get(chunk.tenant, 0) > 0:
            over[chunk.tenant] -= 1
            back.add(chunk.id)
    params = {"ids": list_param(sorted(back)), "tokens": list_param([token]), "refund": 1}
    s.fetch_all("release_chunks", params)
    return [chunk for chunk in chunks if chunk.id not in back]


class CapsWatch:
    """Whether any tenant has an in-flight quota, read at most every CAPS_CHECK_SECONDS: only
    then does a claim run in a transaction that keeps the quotas exact (`keep_quotas`); without
    any quota a claim stays one statement."""

    def __init__(self) -> None:
        self._capped = False
        self._read_at = -float("inf")

    def capped(self, backend: Backend) -> bool:
        now = time.monotonic()
        if now - self._read_at >= CAPS_CHECK_SECONDS:
            row = backend.fetch_one("tenants_capped")
            self._capped = bool(row and int(row["n"]))
            self._read_at = now
        return self._capped

    def forget(self) -> None:
        self._read_at = -float("inf")


class Keep(enum.Enum):
    """A quota left as it is by `Tenants.set` (None removes it)."""

    KEEP = "keep"


KEEP = Keep.KEEP


def validate(weight: float | None, max_in_flight: int | None, max_queued: int | None) -> None:
    if weight is not None and not weight > 0:
        raise ConfigurationError(f"a tenant's weight must be above 0, not {weight}")
    for name, value in (("max-in-flight", max_in_flight), ("max-queued", max_queued)):
        if value is not None and value < 0:
            raise ConfigurationError(f"--{name} must be 0 or more, not {value}")


def changed(
    before: TenantPolicy,
    *,
    weight: float | None = None,
    max_in_flight: int | Keep | None = KEEP,
    max_queued: int | Keep | None = KEEP,
) -> TenantPolicy:
    """`before` with what was given replaced (a quota given as None is removed)."""
    validate(
        weight,
        None if isinstance(max_in_flight, Keep) else max_in_flight,
        None if isinstance(max_queued, Keep) else max_queued,
    )
    return TenantPolicy(
        before.id,
        before.weight if weight is None else float(weight),
        before.max_in_flight if isinstance(max_in_flight, Keep) else max_in_flight,
        before.max_queued if isinstance(max_queued, Keep) else max_queued,
        True,
    )


def shown(policy: TenantPolicy) -> dict[str, Any]:
    return {
        "tenant": policy.id,
        "weight": policy.weight,
        "max_in_flight": policy.max_in_flight,
        "max_queued": policy.max_queued,
        "declared": policy.declared,
    }


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


class Tenants:
    """The operator's side: every tenant with its load, and a change of weight or quotas,
    audited in the same transaction."""

    def __init__(self, backend: Backend, caps: CapsWatch | None = None) -> None:
        self.backend = backend
        self.caps = caps

    def all(self) -> list[TenantLoad]:
        found = []
        for row in self.backend.fetch_all("tenants_list"):
            policy = TenantPolicy.from_row(str(row["id"]), row)
            found.append(TenantLoad(policy, int(row["pending"]), int(row["in_flight"])))
        return found

    def get(self, tenant: str) -> TenantPolicy:
        with self.backend.transaction(write=False) as s:
            return policy_of(s, tenant)

    def set(
        self,
        tenant: str,
        *,
        actor: str,
        reason: str,
        weight: float | None = None,
        max_in_flight: int | Keep | None = KEEP,
        max_queued: int | Keep | None = KEEP,
    ) -> TenantPolicy:
        """Declare `tenant` or change what is given (a quota given as None is removed)."""
        if not tenant.strip():
            raise ConfigurationError("a tenant's id cannot be empty")
        with self.backend.transaction() as s:
            before = policy_of(s, tenant)
            after = changed(
                before, weight=weight, max_in_flight=max_in_flight, max_queued=max_queued
            )
            s.execute(
                "tenant_upsert",
                {
                    "id": tenant,
                    "weight": after.weight,
                    "max_in_flight": after.max_in_flight,
                    "max_queued": after.max_queued,
                },
            )
            details = {"tenant": tenant, "before": shown(before), "after": shown(after)}
            _audit(s, "tenant_set", actor, reason, details)
        if self.caps is not None:
            self.caps.forget()
        return after

    def grant_role(self, role: str, tenant: str, *, actor: str, reason: str) -> None:
        """Bind a PostgreSQL role to one tenant and grant it that tenant's rows (row-level
        security, migration 0017): under it every other tenant's row reads as absent."""
        _require_scoping(self.backend, "tenant roles")
        if not role.strip() or not tenant.strip():
            raise ConfigurationError("a role and a tenant must both be named")
        _one_tenant(tenant)
        with self.backend.transaction() as s:
            s.execute("pg_tenant_role_grant", {"role": role, "tenant": tenant})
            _audit(s, "tenant_role_grant", actor, reason, {"role": role, "tenant": tenant})

    def new_token(self, tenant: str, *, actor: str, reason: str) -> str:
        """A new token that opens the dashboard and its API to `tenant` alone; only its
        SHA-256 is stored, so it is shown once."""
        _require_scoping(self.backend, "tenant tokens")
        _one_tenant(tenant)
        token = "cst_" + secrets.token_urlsafe(32)
        with self.backend.transaction() as s:
            s.execute("pg_tenant_token_add", {"digest": token_digest(token), "tenant": tenant})
            _audit(s, "tenant_token_add", actor, reason, {"tenant": tenant})
        return token

    def revoke_tokens(self, tenant: str, *, actor: str, reason: str) -> int:
        """Revoke every token of `tenant`; how many there were."""
        _require_scoping(self.backend, "tenant tokens")
        with self.backend.transaction() as s:
            n = s.execute("pg_tenant_tokens_revoke", {"tenant": tenant})
            _audit(s, "tenant_tokens_revoke", actor, reason, {"tenant": tenant, "revoked": n})
        return n

    def token_tenant(self, token: str) -> str | None:
        """The tenant a token opens, or None (always None where tenants cannot be scoped)."""
        if not self.backend.tenant_scoping or not token.startswith("cst_"):
            return None
        row = self.backend.fetch_one("pg_tenant_token_find", {"digest": token_digest(token)})
        return None if row is None else str(row["tenant"])

    def tokens_exist(self) -> bool:
        if not self.backend.tenant_scoping:
            return False
        row = self.backend.fetch_one("pg_tenant_tokens_count")
        return bool(row and int(row["n"]))


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _require_scoping(backend: Backend, what: str) -> None:
    if not backend.tenant_scoping:
        raise ConfigurationError(
            f"{what} need PostgreSQL's row-level security: on SQLite one database file is one "
            "trust domain (docs/tenants.md)"
        )


def _one_tenant(tenant: str) -> None:
    if not tenant.strip():
        raise ConfigurationError("a tenant must be named")
    if tenant.strip() == "*":
        raise ConfigurationError("'*' is every tenant, not one: name one tenant")


def _audit(s: Session, action: str, actor: str, reason: str, details: dict[str, Any]) -> None:
    s.execute(
        "insert_audit",
        {
            "action": action,
            "actor": actor,
            "reason": reason,
            "chunk_id": None,
            "queue_id": None,
            "details": json.dumps(details, separators=(",", ":")),
        },
    )
