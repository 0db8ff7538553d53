"""App: a database opened from a URL, with the registry of what it can run and its settings; the
entry points a program uses (create a queue, start a worker, intervene).

App = backend + Manager + Registry + Settings. It assembles them and hands them down: nothing
below this module imports App.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from chunksync.backends import Backend, open_backend
from chunksync.deps import operate
from chunksync.deps.budget import RetryBudgets
from chunksync.deps.model import Limits, Rate, limits_from
from chunksync.deps.store import DependencyStore
from chunksync.exceptions import ConfigurationError
from chunksync.manager import Manager
from chunksync.models import DEFAULT_PRIORITY, DEFAULT_TENANT, Queue
from chunksync.observe.alerts import AlertConfig
from chunksync.observe.model import HealthThresholds
from chunksync.registry import Registry
from chunksync.retry import DEFAULT_POLICY, RetryPolicy
from chunksync.settings import Settings
from chunksync.sources.base import FunctionSource, Handler, Source, kind_of

if TYPE_CHECKING:
    from chunksync.runtime.worker import Worker

DEFAULT_DATABASE_URL = "sqlite:///chunksync.db"
DEFAULT_CHUNK_SIZE = 500


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
        self._view = False
        self.backend: Backend = open_backend(url, **backend_options)
        self.manager = Manager(self.backend)
        self.registry = Registry()
        self.settings = Settings.from_env()
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
        self.registry.register_source(source)

    def sources(self) -> list[Source]:
        return self.registry.sources()

    def kinds(self) -> list[str]:
        return self.registry.kinds()

    def source_for(self, queue: Queue) -> Source:
        return self.registry.source_for(queue)

    def add_policy(self, policy: RetryPolicy) -> None:
        self.registry.add_policy(policy)

    def policy(self, name: str) -> RetryPolicy:
        return self.registry.policy(name)

    @property
    def budgets(self) -> RetryBudgets:
        """This process's retry budget of each dependency."""
        return self.registry.budgets

    # --- dependencies ---------------------------------------------------------------

    def dependency(
        self,
        name: str,
        *,
        connections: int | None = None,
        rate: str | Rate | None = None,
        burst: int | None = None,
    ) -> Limits:
        """Declare what a dependency (or every one a pattern such as `imap://*@imap.gmail.com`
        matches) allows the whole fleet: `connections` at once, `rate` calls per period
        ("250/s", "10000/10m"), `burst` at once after a quiet spell. A declaration applies when
        the dependency's row is first made (an exact name's row is made now); an existing
        row keeps its limits, which `chunksync deps set` changes."""
        from chunksync.redact import redact_url

        if redact_url(name) != name:
            raise ConfigurationError(
                f"dependency name '{redact_url(name)}' holds a secret: name the account without "
                "its password or token (like imap://alice@imap.gmail.com)"
            )
        text_rate = None if isinstance(rate, Rate) else rate
        given = {"connections": connections, "rate": text_rate, "burst": burst}
        limits = limits_from({k: v for k, v in given.items() if v is not None}, f"'{name}'")
        if isinstance(rate, Rate):
            limits = Limits(limits.connections, rate, limits.burst)
        self.registry.declare_dependency(name, limits)
        if not operate.is_pattern(name):
            operate.declare_new(self.backend, name, limits)
        return limits

    def ensure_dependency(self, name: str) -> bool:
        """Make dependency `name`'s row if it is new, with the limits declared for it (its own
        or the most specific pattern's); True when made."""
        declared = self.registry.declared_limits(name) or Limits()
        return operate.declare_new(self.backend, name, declared)

    @property
    def deps(self) -> DependencyStore:
        """The dependency rows: list, get, set limits and flow (see chunksync.deps.store)."""
        return DependencyStore(self.backend)

    # --- settings -------------------------------------------------------------------

    def configure(
        self, *, health: HealthThresholds | None = None, alerts: AlertConfig | None = None
    ) -> None:
        """Replace the health thresholds (for the health state, alerts and stress feed) or the
        alert configuration; workers made after this call use them."""
        if alerts is not None:
            self.settings = self.settings.with_alerts(alerts)
        if health is not None:
            self.settings = self.settings.with_health(health)

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
        unique_key: str | None = None,
    ) -> Queue:
        """A sync queue for `source`: from the payloads given, or planned by the source. Its
        chunks get `max_attempts` attempts, by default the policy's. With a `unique_key` still
        held by an unfinished queue of the tenant, that queue is returned instead."""
        kind = kind_of(source)
        if not self.registry.has_kind(kind):
            raise ConfigurationError(
                f"unknown source kind '{kind}': registered kinds are {', '.join(self.kinds())}"
            )
        if not self.registry.has_policy(policy):
            raise ConfigurationError(f"unknown retry policy '{policy}': load it with add_policy()")
        if max_attempts is None:
            max_attempts = self.registry.policy(policy).max_attempts
        if payloads is None:
            payloads = self.registry.source_of_kind(kind).plan(source, chunk_size=chunk_size)
        from chunksync.redact import redact_url

        # The dependency's row, with the limits declared for it, before any chunk can be claimed.
        dependency = self.registry.dependency_of(source, kind)
        self.ensure_dependency(dependency)
        return self.manager.create_queue(
            name or redact_url(source),
            redact_url(source),
            kind,
            payloads,
            tenant=tenant,
            priority=priority,
            policy=policy,
            max_attempts=max_attempts,
            dependency=dependency,
            unique_key=unique_key,
        )

    def worker(self, **options: Any) -> Worker:
        """A Worker on this app (see chunksync.runtime.worker.Worker for the options)."""
        from chunksync.runtime.worker import Worker

        return Worker(self.manager, self.registry, self.settings, **options)

    def for_tenant(self, tenant: str) -> App:
        """This app as one tenant sees it: the same registry and settings over the backend's
        view of that tenant (`Backend.for_tenant`). Closing it closes nothing."""
        view = copy.copy(self)
        view.backend = self.backend.for_tenant(tenant)
        view.manager = Manager(view.backend)
        view._view = True
        return view

    def close(self) -> None:
        if self._view:
            return
        self.registry.close()
        self.backend.close()

    def __enter__(self) -> App:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
