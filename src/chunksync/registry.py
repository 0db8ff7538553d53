"""Registry: what an app knows how to run. Sources (by kind), retry policies (by name), the
per-dependency retry budgets that the policies' `[stress]` tables configure, and the limits
declared for dependencies (by name or pattern).

App assembles one and hands it down: the worker, the upkeep loop and the health pages read it;
none of them looks the app up.
"""

from __future__ import annotations

import logging
import threading

from chunksync.deps.budget import RetryBudgets
from chunksync.deps.model import Limits, limits_for
from chunksync.exceptions import ConfigurationError
from chunksync.models import Queue
from chunksync.retry import DEFAULT_POLICY, RetryPolicy
from chunksync.sources.base import Source, default_dependency, kind_of

log = logging.getLogger("chunksync")


class Registry:
    """Sources, policies and dependency budgets of one app; safe to read from any thread."""

    def __init__(self) -> None:
        self.budgets = RetryBudgets()
        self._sources: dict[str, Source] = {}
        self._policies: dict[str, RetryPolicy] = {DEFAULT_POLICY.name: DEFAULT_POLICY}
        self._warned: set[str] = set()
        self._dependencies: dict[str, Limits] = {}
        self._lock = threading.Lock()

    # --- sources -------------------------------------------------------------------

    def register_source(self, source: Source) -> None:
        if not source.kind:
            raise ConfigurationError(f"source {type(source).__name__} has no kind")
        self._sources[source.kind] = source
        if source.policy is not None and source.policy.name not in self._policies:
            self.add_policy(source.policy)

    def sources(self) -> list[Source]:
        return list(self._sources.values())

    def kinds(self) -> list[str]:
        return sorted(self._sources)

    def permits_held(self, dependency: str, permits: int) -> None:
        """A worker now holds `permits` connection permits of `dependency`: every source closes
        the connections it keeps open beyond them (Source.permits_held)."""
        for source in self.sources():
            source.permits_held(dependency, permits)

    def has_kind(self, kind: str) -> bool:
        return kind in self._sources

    def source_of_kind(self, kind: str) -> Source:
        return self._sources[kind]

    def source_for(self, queue: Queue) -> Source:
        kind = kind_of(queue.source)
        try:
            return self._sources[kind]
        except KeyError:
            raise ConfigurationError(
                f"no source or handler is registered for '{kind}' (queue {queue.name})"
            ) from None

    def dependency_of(self, source: str, kind: str) -> str:
        """The dependency a queue's source names: its registered source says (IMAP: the
        account), else `default_dependency`."""
        found = self._sources.get(kind)
        return found.dependency(source) if found else default_dependency(source, kind)

    # --- dependencies ----------------------------------------------------------------

    def declare_dependency(self, name: str, limits: Limits) -> None:
        """Declare the limits of a dependency, or of every dependency a pattern matches; a
        later declaration of the same name or pattern replaces the earlier one."""
        with self._lock:
            self._dependencies[name] = limits

    def declared_limits(self, name: str) -> Limits | None:
        """The limits declared for dependency `name`: its own declaration, else the most
        specific pattern that matches it, else None."""
        found = limits_for(name, self._dependencies)
        return None if found is None else found[1]

    def declared_dependencies(self) -> dict[str, Limits]:
        return dict(self._dependencies)

    def close(self) -> None:
        for source in self._sources.values():
            source.close()

    # --- policies ------------------------------------------------------------------

    def add_policy(self, policy: RetryPolicy) -> None:
        self._policies[policy.name] = policy

    def has_policy(self, name: str) -> bool:
        return name in self._policies

    def policy(self, name: str) -> RetryPolicy:
        """The named policy; one this process has not loaded is warned about once and the
        default stands in (a queue planned by another process may name one)."""
        found = self._policies.get(name)
        if found is not None:
            return found
        with self._lock:
            if name not in self._warned:
                self._warned.add(name)
                log.warning("policy '%s' is not loaded in this process: using the default", name)
        return DEFAULT_POLICY
