"""App: a database opened from a URL, the registry of sources and policies, and the entry points
a program uses (create a queue, start a worker, intervene)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

from chunksync.backends import Backend, open_backend
from chunksync.exceptions import ConfigurationError
from chunksync.manager import Manager
from chunksync.models import DEFAULT_PRIORITY, DEFAULT_TENANT, Queue
from chunksync.retry import DEFAULT_POLICY, RetryBudgets, RetryPolicy
from chunksync.sources.base import FunctionSource, Handler, Source, kind_of

DEFAULT_DATABASE_URL = "sqlite:///chunksync.db"
DEFAULT_CHUNK_SIZE = 500

log = logging.getLogger("chunksync")


class App:
    """The entry point of the Python API.

    >>> app = App("sqlite:///sync.db")
    >>> @app.handler("pages")
    ... def fetch_page(ctx): ...
    >>> pages = [{"page": n} for n in range(10)]
    >>> queue = app.create_queue("pages://api.example.com", payloads=pages)
    >>> app.worker(concurrency=4).run_until_done([queue.id])
    """

    def __init__(
        self,
        url: str = DEFAULT_DATABASE_URL,
        *,
        builtin_sources: bool = True,
        **backend_options: Any,
    ) -> None:
        self.url = url
        self.backend: Backend = open_backend(url, **backend_options)
        self.manager = Manager(self.backend)
        self.budgets = RetryBudgets()
        self._sources: dict[str, Source] = {}
        self._policies: dict[str, RetryPolicy] = {DEFAULT_POLICY.name: DEFAULT_POLICY}
        self._warned: set[str] = set()
        self._lock = threading.Lock()
        if builtin_sources:
            from chunksync.sources import builtin

            for source in builtin.sources():
                self.register_source(source)

    # --- registries -----------------------------------------------------------------

    def handler(self, kind: str) -> Callable[[Handler], Handler]:
        """Register a function that processes the chunks of queues of this kind."""

        def register(fn: Handler) -> Handler:
            self.register_source(FunctionSource(kind, fn))
            return fn

        return register

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

    def source_for(self, queue: Queue) -> Source:
        kind = kind_of(queue.source)
        try:
            return self._sources[kind]
        except KeyError:
            raise ConfigurationError(
                f"no source or handler is registered for '{kind}' (queue {queue.name})"
            ) from None

    def add_policy(self, policy: RetryPolicy) -> None:
        self._policies[policy.name] = policy

    def policy(self, name: str) -> RetryPolicy:
        found = self._policies.get(name)
        if found is not None:
            return found
        with self._lock:
            if name not in self._warned:
                self._warned.add(name)
                log.warning("policy '%s' is not loaded in this process: using the default", name)
        return DEFAULT_POLICY

    # --- queues -----------------------------------------------------------------

    def create_queue(
        self,
        source: str,
        payloads: Iterable[Any] | None = None,
        *,
        name: str | None = None,
        tenant: str = DEFAULT_TENANT,
        priority: int = DEFAULT_PRIORITY,
        policy: str = DEFAULT_POLICY.name,
        max_attempts: int | None = None,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
    ) -> Queue:
        """A sync queue for `source`: from the payloads given, or planned by the source. Its
        chunks get `max_attempts` attempts, by default the policy's."""
        kind = kind_of(source)
        if kind not in self._sources:
            raise ConfigurationError(
                f"unknown source kind '{kind}': registered kinds are {', '.join(self.kinds())}"
            )
        if policy not in self._policies:
            raise ConfigurationError(f"unknown retry policy '{policy}': load it with add_policy()")
        if max_attempts is None:
            max_attempts = self._policies[policy].max_attempts
        if payloads is None:
            payloads = self._sources[kind].plan(source, chunk_size=chunk_size)
        from chunksync.redact import redact_url

        return self.manager.create_queue(
            name or redact_url(source),
            redact_url(source),
            kind,
            payloads,
            tenant=tenant,
            priority=priority,
            policy=policy,
            max_attempts=max_attempts,
        )

    def worker(self, **options: Any) -> Any:
        """A Worker on this app (see chunksync.worker.Worker for the options)."""
        from chunksync.worker import Worker

        return Worker(self, **options)

    def close(self) -> None:
        for source in self._sources.values():
            source.close()
        self.backend.close()

    def __enter__(self) -> App:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
