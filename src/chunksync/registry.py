"""Registry: what an app knows how to run. Sources (by kind), retry policies (by name) and the
per-dependency retry budgets that the policies' `[stress]` tables configure.

App assembles one and hands it down: the worker, the upkeep loop and the health pages read it;
none of them looks the app up.
"""

from __future__ import annotations

import logging
import threading

from chunksync.deps.budget import RetryBudgets
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
