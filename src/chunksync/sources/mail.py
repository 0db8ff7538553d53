"""What the mail sources (IMAP, Maildir, mbox) share: the store they write into, the payloads
they plan, and the reconciliation that closes a sync (messages on the source, stored, difference).

Payloads are dicts with an `op`: `fetch` (download messages into the store), and for IMAP
`changes` (flags since a MODSEQ) and `reconcile` (UID-set difference: deletions and gaps).
Every payload names its folder key (account, folder, uidvalidity) and its `count` of messages.
"""

from __future__ import annotations

import abc
import fnmatch
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

from chunksync.backends.base import Backend
from chunksync.context import ChunkContext
from chunksync.exceptions import ConfigurationError, InvalidPayload
from chunksync.models import DEFAULT_TENANT, ErrorCategory
from chunksync.redact import redact_url
from chunksync.retry import DEFAULT_POLICY, CategoryRule, RetryPolicy, Schedule, ScheduleKind
from chunksync.sources.base import Source
from chunksync.store import FolderKey, MessageStore
from chunksync.store.store import DELETIONS

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class SyncOptions:
    """What a sync does beyond downloading: the deletion policy (`keep`: a message deleted on
    the server stays in the store, marked with the time it went; `mirror`: it goes), `repair`
    (re-list every folder and fix the store even when it looks unchanged), `origin`, the URI
    the user synced (never holding a password), which names the account in the store, and
    `tenant`, whose mailbox it is (its queues; on PostgreSQL, its rows of the store)."""

    deletions: str = "keep"
    repair: bool = False
    origin: str | None = None
    tenant: str = DEFAULT_TENANT

    def __post_init__(self) -> None:
        if self.deletions not in DELETIONS:
            raise ConfigurationError(
                f"unknown deletion policy '{self.deletions}': use {' or '.join(DELETIONS)}"
            )

    @property
    def mirror(self) -> bool:
        return self.deletions == "mirror"


DEFAULT_OPTIONS = SyncOptions()


@dataclass(frozen=True, slots=True)
class Reconciliation:
    """A folder after a sync: messages on the source, stored, and their difference (must be 0)."""

    uri: str
    folder: str
    on_source: int
    stored: int
    stored_bytes: int = 0
    details: str = ""  # what differs, by UID, when the counts do not agree

    @property
    def difference(self) -> int:
        return self.on_source - self.stored


def local_path(uri: str, kind: str, label: str, usage: str, *, empty: str | None = None) -> Path:
    """The resolved file path of a local mail URI (maildir:///..., mbox:///...): the one place
    that splits it, so a mistake in any of them, an unclosed '[' or a NUL byte included, is one
    sentence naming the URI. `empty`: the complaint when it names no path (None: allowed)."""
    try:
        parts = urlsplit(uri)
        if parts.scheme.lower() != kind or parts.netloc not in ("", "localhost"):
            raise ConfigurationError(f"invalid {label} URI '{uri}': {usage}")
        raw = unquote(parts.path)
        if not raw and empty is not None:
            raise ConfigurationError(f"invalid {label} URI '{uri}': {empty}")
        return Path(raw).expanduser().resolve()
    except ValueError as exc:  # urlsplit on an unclosed '[', a NUL byte in a path
        raise ConfigurationError(f"invalid {label} URI '{uri}': {exc}") from None


def batched(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), max(1, size)):
        yield items[start : start + size]


def folder_key(payload: Any) -> FolderKey:
    if not isinstance(payload, dict):
        raise InvalidPayload("a mail chunk's payload must be an object")
    try:
        return FolderKey(
            str(payload["account"]), str(payload["folder"]), int(payload["uidvalidity"])
        )
    except (KeyError, TypeError, ValueError):
        raise InvalidPayload("a mail chunk needs account, folder and uidvalidity") from None


def _mail_policy() -> RetryPolicy:
    """Mail chunks are idempotent (upserts keyed by UID) and resume from their checkpoint, so a
    failure of the path to the server (network, timeout, temporary, a stuck chunk whose worker
    died) is retried longer than by default: a chunk that dies is mail missing from the store
    until the next sync. Rate limits, auth and the rest keep the default rules.

    A mail chunk is also taken for a crash loop later (MAIL_CRASH_LOOP_LIMIT stuck in a row, not
    3): it is parsed in pure Python and holds one chunk's memory, so a worker that dies holding it
    was almost never killed by it, while a killed or paused worker, or a database outage past the
    lease, counts a "crash" for every chunk it held (the chaos test saw a mail chunk stuck 3
    times in a row in 1 run of 6). Its attempts still bound a real crash loop."""
    rules = dict(DEFAULT_POLICY.rules)
    patient = Schedule(ScheduleKind.EXPONENTIAL, 2.0, 2.0, max_s=MAIL_MAX_DELAY_SECONDS)
    for category in (ErrorCategory.NETWORK, ErrorCategory.TEMPORARY):
        rules[category] = CategoryRule(True, patient, limit=MAIL_TRANSIENT_LIMIT)
    rules[ErrorCategory.TIMEOUT] = CategoryRule(
        True,
        Schedule(ScheduleKind.LINEAR, 3.0, max_s=MAIL_MAX_DELAY_SECONDS),
        limit=MAIL_TRANSIENT_LIMIT,
    )
    return replace(
        DEFAULT_POLICY,
        name=MAIL_POLICY_NAME,
        rules=rules,
        max_attempts=MAIL_ATTEMPTS,
        crash_loop_limit=MAIL_CRASH_LOOP_LIMIT,
    )


MAIL_POLICY_NAME = "mail"
MAIL_ATTEMPTS = 12
MAIL_TRANSIENT_LIMIT = 10  # network, temporary and timeout failures retried through attempt 10
MAIL_MAX_DELAY_SECONDS = 120.0
MAIL_CRASH_LOOP_LIMIT = 6
MAIL_POLICY = _mail_policy()


class MailSource(Source):
    """A source that syncs mail into the message store of the queue's own database."""

    policy = MAIL_POLICY

    def __init__(self) -> None:
        self._backend: Backend | None = None

    def attach(self, backend: Backend) -> None:
        """Give planning access to the store (processing uses the chunk's own database)."""
        self._backend = backend

    def configure(self, uri: str, *, processes: int = 1, credentials: Any = None) -> None:
        """Set this process up for a run of `uri` shared by `processes` processes (IMAP: the
        account's credentials and this process's share of its connection cap)."""
        return None

    def store(self, ctx: ChunkContext | None = None) -> MessageStore:
        """The message store: a chunk's own tenant's where the database keeps tenants apart
        (its rows are written as that tenant's, and another tenant's are out of reach)."""
        backend = ctx.backend if ctx is not None else self._backend
        if backend is None:
            raise ConfigurationError(
                f"the {self.kind} source has no message store: attach it to an App first"
            )
        if ctx is not None and backend.tenant_scoping:
            backend = backend.for_tenant(ctx.chunk.tenant)
        return MessageStore(backend)

    def has_store(self) -> bool:
        return self._backend is not None

    def folders(self, uri: str) -> list[str]:
        """The URI of every selectable folder of the mailbox `uri` names (for --all-folders)."""
        return [u for _name, u in self.folder_names(uri)]

    def folder_names(self, uri: str) -> list[tuple[str, str]]:
        """(name, URI) of every selectable folder of the mailbox `uri` names."""
        return [(self.folder_of(uri), uri)]

    def folder_of(self, uri: str) -> str:
        """The store's name of the folder a URI names."""
        return uri

    def plan(
        self, uri: str, *, chunk_size: int, options: SyncOptions = DEFAULT_OPTIONS
    ) -> Iterable[Any]:
        """Payloads of the chunks that sync `uri`, under the run's options."""
        return super().plan(uri, chunk_size=chunk_size)

    @abc.abstractmethod
    def reconcile(self, uri: str) -> Reconciliation:
        """Count the messages on the source and in the store for the folder `uri` names."""

    def chunk_size(self, payload: Any) -> int:
        if isinstance(payload, dict) and isinstance(payload.get("count"), int):
            return int(payload["count"])
        return 1


def store_backend(app: Any, tenant: str) -> Backend:
    """The database as one tenant's sync reads and writes the store: the tenant's view where
    the database keeps tenants apart (PostgreSQL), else the database itself."""
    backend: Backend = app.backend
    return backend.for_tenant(tenant) if backend.tenant_scoping else backend


# --- a whole sync: plan every folder, run workers until done, reconcile ----------------------


@dataclass(frozen=True, slots=True)
class PlannedFolder:
    uri: str
    queue_id: str | None  # None: nothing to do (an unchanged folder)
    key: FolderKey | None
    messages: int  # messages to download
    baseline: int  # messages stored under `key` before the run
    baseline_bytes: int = 0


@dataclass(frozen=True, slots=True)
class SyncProgress:
    to_download: int
    downloaded: int
    stored_bytes: int  # bytes added to the store by this run


@dataclass(frozen=True, slots=True)
class RunSetup:
    """How each process of a sync sets up its mail source. Pickled to helper processes: it holds
    where the secret comes from (a variable's name, a file, a command), never the secret."""

    uri: str
    processes: int = 1
    credentials: Any = None
    tenant: str = DEFAULT_TENANT

    def __call__(self, app: Any) -> MailSource:
        source = mail_source(app, self.uri, self.tenant)
        source.configure(self.uri, processes=self.processes, credentials=self.credentials)
        return source


def mail_source(app: Any, uri: str, tenant: str = DEFAULT_TENANT) -> MailSource:
    """The App's mail source for this URI's scheme, attached to the App's database (to the
    tenant's view of it, where the database keeps tenants apart)."""
    from chunksync.sources.base import kind_of

    kind = kind_of(uri)
    for source in app.sources():
        if isinstance(source, MailSource) and source.kind == kind:
            source.attach(store_backend(app, tenant))
            return source
    if kind == "imap":
        raise ConfigurationError("IMAP needs IMAPClient: pip install 'chunksync[imap]'")
    raise ConfigurationError(
        f"'{uri}' is not a mailbox: use imap://user@host/FOLDER, maildir:///path or mbox:///path"
    )


def account_origin(uri: str) -> str:
    """How the user named the account of `uri`: for IMAP the URI up to the host and port
    (imaps://alice@mail.example.com, never a password: an IMAP URI with one is refused), for a
    local mailbox the URI itself."""
    try:
        parts = urlsplit(uri)
    except ValueError:
        return redact_url(uri)
    if parts.scheme.lower() in ("imap", "imaps") and parts.netloc:
        return redact_url(f"{parts.scheme.lower()}://{parts.netloc}")
    return redact_url(uri)


def select_folders(
    source: MailSource,
    uri: str,
    *,
    every: bool = False,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
) -> list[str]:
    """The URIs a run syncs: the one `uri` names, or (`every`, or any `include` pattern) every
    listed folder whose decoded name matches an `include` glob ('INBOX', 'Archive/*'; all when
    none) and no `exclude` glob. Matching is case-sensitive, as folder names are (INBOX aside)."""
    if not every and not include:
        return [uri]
    chosen = [
        folder_uri
        for name, folder_uri in source.folder_names(uri)
        if folder_matches(name, include, exclude)
    ]
    if not chosen:
        asked = [*(f"--folder '{p}'" for p in include), *(f"--exclude '{p}'" for p in exclude)]
        raise ConfigurationError(f"no folder of {redact_url(uri)} matches {' '.join(asked)}")
    return chosen


def folder_matches(name: str, include: Sequence[str], exclude: Sequence[str]) -> bool:
    """A pattern is a glob, or the name itself: 'Spaces and [brackets]' names that folder,
    though as a glob its brackets would be a set of characters."""

    def hit(pattern: str) -> bool:
        if pattern.upper() == "INBOX" or name.upper() == "INBOX":
            return fnmatch.fnmatchcase(name.upper(), pattern.upper())
        return pattern == name or fnmatch.fnmatchcase(name, pattern)

    wanted = not include or any(hit(p) for p in include)
    return wanted and not any(hit(p) for p in exclude)


def plan_sync(
    app: Any,
    source: MailSource,
    uris: Sequence[str],
    *,
    chunk_size: int,
    options: SyncOptions = DEFAULT_OPTIONS,
) -> list[PlannedFolder]:
    """Plan each folder into a queue of its own (no queue when nothing changed), for the
    options' tenant: where the database keeps tenants apart, the source then reads, plans and
    reconciles that tenant's rows of the store only."""
    planned: list[PlannedFolder] = []
    source.attach(store_backend(app, options.tenant))
    store = source.store()
    for uri in uris:
        payloads = list(source.plan(uri, chunk_size=chunk_size, options=options))
        if not payloads:
            planned.append(PlannedFolder(uri, None, None, 0, 0))
            continue
        key = folder_key(payloads[0])
        baseline, baseline_bytes = store.count(key)
        messages = sum(int(p.get("count", 0)) for p in payloads if p.get("op") == "fetch")
        queue = app.create_queue(
            uri,
            payloads=payloads,
            chunk_size=chunk_size,
            policy=(source.policy or DEFAULT_POLICY).name,
            tenant=options.tenant,
        )
        planned.append(PlannedFolder(uri, queue.id, key, messages, baseline, baseline_bytes))
    return planned


def progress(source: MailSource, planned: Sequence[PlannedFolder]) -> SyncProgress:
    store = source.store()
    downloaded = stored_bytes = 0
    for folder in planned:
        if folder.key is not None:
            count, size = store.count(folder.key)
            downloaded += max(0, count - folder.baseline)
            stored_bytes += max(0, size - folder.baseline_bytes)
    total = sum(f.messages for f in planned)
    return SyncProgress(total, min(downloaded, total), stored_bytes)
