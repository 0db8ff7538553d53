"""Watching a mailbox after its sync (`chunksync sync --watch`): new mail stored within seconds,
and each change announced once as an event.

Listeners (chunksync.sources.imap.listen) mark folders changed; one sync thread takes the
changed folders and runs the ordinary incremental sync for each (plan, then the watch's worker
runs the queue to its end), so what is stored while watching is stored exactly as by
`chunksync sync`.
The events come from the store, not from the server's chatter: each folder's (UID -> flags) is
kept from the last look, and after a sync the difference is `message.new`, `message.deleted`
and `message.flags`. A change seen twice (a reconnect, a restart of the server) is therefore
announced once, and its event id is derived from the change itself. A sync that fails is
announced as `sync.failed` (once per run of failures), and tried again after the mail policy's
backoff. After a new UIDVALIDITY the folder's next look is a new baseline: no per-message events.

Connections: the listeners hold theirs (NOTIFY: 1, IDLE: one per folder, polling: none) and
the sync keeps to the rest of the account's cap (the URI's ?connections=, lowered by a declared
dependency limit on `imap://user@host`), closing its pooled connections after each sync.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from chunksync.errors import categorize
from chunksync.exceptions import ConfigurationError
from chunksync.models import ChunkStatus
from chunksync.redact import redact
from chunksync.runtime.progress import queues_finished
from chunksync.sources.imap.listen import Listener, Mode, choose_mode, connections_of
from chunksync.sources.imap.source import ImapSource
from chunksync.sources.imap.uri import ImapTarget, parse_imap_uri
from chunksync.sources.mail import DEFAULT_OPTIONS, MAIL_POLICY, SyncOptions, plan_sync
from chunksync.store import FolderKey, MessageStore
from chunksync.webhooks import event_id

log = logging.getLogger("chunksync.imap.watch")

POLL_SECONDS = 30.0  # polling mode: every folder's STATUS this often
RECHECK_SECONDS = 300.0  # listening modes: every folder looked at anyway, lest a notice be lost
WAKE_SECONDS = 0.5  # the sync thread's longest sleep: the stop flag is read this often
JOIN_SECONDS = 10.0
WORKER_POLL_SECONDS = 0.1  # the watch's worker looks for a sync's chunks this often
DONE_CHECK_SECONDS = 0.02  # how often a sync looks whether its queue is finished
LAST_UID = 2**62
NEW, DELETED, FLAGS, FAILED = "message.new", "message.deleted", "message.flags", "sync.failed"

Emit = Callable[[Mapping[str, Any]], None]


@dataclass(frozen=True, slots=True)
class WatchOptions:
    chunk_size: int = 500
    poll_s: float = POLL_SECONDS
    recheck_s: float = RECHECK_SECONDS
    prefer: Mode | None = None  # another way to listen, when the server offers it
    sync: SyncOptions = DEFAULT_OPTIONS  # the run's deletion policy, repair and account origin


class Changed:
    """The folders waiting for a sync, and the wake-up of the thread that syncs them."""

    def __init__(self) -> None:
        self._folders: set[str] = set()
        self._cond = threading.Condition()

    def mark(self, folders: Sequence[str]) -> None:
        with self._cond:
            self._folders.update(folders)
            self._cond.notify_all()

    def take(self, timeout_s: float) -> set[str]:
        with self._cond:
            if not self._folders:
                self._cond.wait(timeout_s)
            found, self._folders = self._folders, set()
            return found


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def event(kind: str, key: FolderKey, data: Mapping[str, Any], *identity: object) -> dict[str, Any]:
    """One event, shaped as EmailEngine's (event, account, path, date, data) with its id."""
    return {
        "event": kind,
        "eventId": event_id(kind, key.account, key.folder, key.uidvalidity, *identity),
        "account": key.account,
        "path": key.folder,
        "date": now_iso(),
        "data": {"uidValidity": key.uidvalidity, **data},
    }


Snapshot = dict[int, str]  # UID -> flags as stored


def snapshot(store: MessageStore, key: FolderKey) -> Snapshot:
    return {int(r["uid"]): str(r["flags"]) for r in store.window(key, 0, LAST_UID)}


def differences(
    store: MessageStore, key: FolderKey, before: Snapshot, after: Snapshot
) -> list[dict[str, Any]]:
    """The events between two looks at one folder (same UIDVALIDITY), in UID order."""
    found: list[dict[str, Any]] = []
    for uid in sorted(after.keys() - before.keys()):
        row = store.get(key, uid) or {}
        data = {
            "uid": uid,
            "size": row.get("size"),
            "flags": after[uid].split(),
            "messageId": row.get("message_id"),
            "subject": row.get("subject"),
            "from": row.get("from_addr"),
        }
        found.append(event(NEW, key, data, uid))
    for uid in sorted(before.keys() - after.keys()):
        found.append(event(DELETED, key, {"uid": uid}, uid))
    for uid in sorted(before.keys() & after.keys()):
        if before[uid] != after[uid]:
            old, new = before[uid].split(), after[uid].split()
            data = {"uid": uid, "flags": new, "added": sorted(set(new) - set(old))}
            data["removed"] = sorted(set(old) - set(new))
            found.append(event(FLAGS, key, data, uid, before[uid], after[uid]))
    return found


class Watch:
    """Watch the folders `uris` (one account) until `stop` is set; events go to `emit`."""

    def __init__(
        self,
        app: Any,
        source: ImapSource,
        uris: Sequence[str],
        emit: Emit,
        options: WatchOptions,
        stop: threading.Event,
    ) -> None:
        self.app = app
        self.source = source
        self.options = options
        self.stop = stop
        self.emit = emit
        self.targets = {parse_imap_uri(u).folder: u for u in uris}
        first = parse_imap_uri(uris[0])
        if any(parse_imap_uri(u).account != first.account for u in uris):
            raise ConfigurationError("--watch watches the folders of one account at a time")
        self.target = first
        self.store = source.store()
        self.changed = Changed()
        self.looks: dict[str, tuple[FolderKey | None, Snapshot]] = {}
        self.failures: dict[str, int] = {}
        self.retry_at: dict[str, float] = {}
        self.mode = Mode.POLL
        self.listeners: list[Listener] = []
        self.syncs = 0
        self._rng = random.Random()

    def cap(self) -> int:
        """The account's connection cap: the URI's, lowered by a declared dependency limit."""
        cap = self.target.connections
        limits = self.app.registry.declared_limits(self.source.dependency(self.target.uri_for("")))
        if limits is not None and limits.connections is not None:
            cap = min(cap, limits.connections)
        return max(1, cap)

    def run(self) -> None:
        """Listen and sync until `stop`; the listeners are stopped and joined on the way out."""
        with self.source.connection(self.target) as conn:
            capabilities = conn.capabilities
        folders = list(self.targets)
        cap = self.cap()
        self.mode = choose_mode(capabilities, folders, cap, self.options.prefer)
        slots = max(1, cap - connections_of(self.mode, len(folders)))
        log.info(
            "watching %d folder(s) by %s, syncing with %d connection(s)",
            len(folders),
            self.mode,
            slots,
        )
        for folder in folders:
            self.looks[folder] = self._look(folder)
        self.source.close()
        self.listeners = self._listeners(folders)
        # One worker for the whole watch: a sync's chunks start at its next poll, and a watch of
        # a month leaves one worker row, not one per sync.
        worker = self.app.worker(concurrency=slots, poll_s=WORKER_POLL_SECONDS)
        worker.start()
        for listener in self.listeners:
            listener.start()
        try:
            self._loop(folders)
        finally:
            self.stop.set()
            worker.stop()
            for listener in self.listeners:
                listener.join(JOIN_SECONDS)
            self.source.close()

    def _listeners(self, folders: list[str]) -> list[Listener]:
        """NOTIFY: one for every folder; IDLE: one per folder; polling: none."""
        if self.mode is Mode.POLL:
            return []
        credentials = self.source.credentials(self.target)
        groups = [[f] for f in folders] if self.mode is Mode.IDLE else [folders]
        mark, stop = self.changed.mark, self.stop
        return [
            Listener(self.target, credentials, g, self.mode, mark, stop, MAIL_POLICY)
            for g in groups
        ]

    def _loop(self, folders: list[str]) -> None:
        every = self.options.poll_s if self.mode is Mode.POLL else self.options.recheck_s
        due = time.monotonic() if self.mode is Mode.POLL else time.monotonic() + every
        while not self.stop.is_set():
            todo = self.changed.take(min(WAKE_SECONDS, max(0.0, due - time.monotonic())))
            now = time.monotonic()
            if now >= due:
                todo.update(folders)
                due = now + every
            todo.update(f for f, at in list(self.retry_at.items()) if at <= now)
            for folder in sorted(todo):
                if self.stop.is_set():
                    return
                self.retry_at.pop(folder, None)
                self._sync_safely(folder)

    def _sync_safely(self, folder: str) -> None:
        try:
            self.sync_folder(folder)
            self.failures.pop(folder, None)
        except Exception as exc:
            if self.stop.is_set():
                return
            failures = self.failures[folder] = self.failures.get(folder, 0) + 1
            category = categorize(exc).category
            delay = MAIL_POLICY.backoff(category, failures, self._rng)
            self.retry_at[folder] = time.monotonic() + delay
            log.warning("watch: syncing %s failed (%s): again in %.1f s", folder, category, delay)
            if failures == 1:
                self._failed(folder, f"{category}: {redact(str(exc)) or type(exc).__name__}")
        finally:
            self.source.close()  # the listeners keep their connections; the pool gives its back

    def _failed(self, folder: str, reason: str) -> None:
        key = self.looks.get(folder, (None, {}))[0] or FolderKey(self.target.account, folder, 0)
        data = {"error": reason}
        self.emit(event(FAILED, key, data, time.time_ns()))

    def _look(self, folder: str) -> tuple[FolderKey | None, Snapshot]:
        state = self.store.folder(self.target.account, folder)
        if state is None:
            return None, {}
        key = FolderKey(state.account, state.folder, state.uidvalidity)
        return key, snapshot(self.store, key)

    def sync_folder(self, folder: str) -> None:
        """The ordinary incremental sync of one folder, then its events."""
        uri = self.targets[folder]
        planned = plan_sync(
            self.app,
            self.source,
            [uri],
            chunk_size=self.options.chunk_size,
            options=self.options.sync,
        )[0]
        self.syncs += 1
        if planned.queue_id is None and self.looks.get(folder, (None, {}))[0] is not None:
            return  # unchanged since the last look
        if planned.queue_id is not None:
            self._run_queue(planned.queue_id)
            dead = self.app.manager.get_queue(planned.queue_id).totals.get(ChunkStatus.DEAD, 0)
            if dead:
                self._failed(folder, f"{dead} chunk(s) failed for good")
        before_key, before = self.looks.get(folder, (None, {}))
        key, after = self._look(folder)
        self.looks[folder] = (key, after)
        if key is None or (before_key is not None and before_key != key):
            return  # a new UIDVALIDITY: this look is the new baseline
        for found in differences(self.store, key, before, after):
            self.emit(found)

    def _run_queue(self, queue_id: str) -> None:
        """Until the watch's worker has finished the queue (or the watch stops)."""
        while not queues_finished(self.app.manager, [queue_id]):
            if self.stop.wait(DONE_CHECK_SECONDS):
                return


def watch_target(uri: str) -> ImapTarget:
    """The IMAP target of a URI given to --watch; anything but IMAP is one sentence."""
    if not uri.lower().startswith(("imap://", "imaps://")):
        raise ConfigurationError("--watch needs an imap:// or imaps:// mailbox")
    return parse_imap_uri(uri)


def run_until_signalled(watch: Watch) -> None:
    """Run `watch` on a thread of its own until SIGTERM or SIGINT (or its own end), so that a
    signal arriving while a sync's worker runs still ends the whole watch; the watch's error,
    if it ended on one, is raised here."""
    import signal

    failed: list[BaseException] = []

    def body() -> None:
        try:
            watch.run()
        except BaseException as exc:
            failed.append(exc)
            watch.stop.set()

    def on_signal(signum: int, _frame: object) -> None:
        log.warning("signal %d: the watch stops", signum)
        watch.stop.set()

    on_main = threading.current_thread() is threading.main_thread()
    previous = (
        {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)} if on_main else {}
    )
    thread = threading.Thread(target=body, name="chunksync-watch", daemon=True)
    thread.start()
    try:
        while thread.is_alive():
            thread.join(WAKE_SECONDS)
    finally:
        watch.stop.set()
        thread.join(JOIN_SECONDS * 2)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if failed:
        raise failed[0]
