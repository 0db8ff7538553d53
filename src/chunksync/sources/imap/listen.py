"""Waiting for IMAP changes: which folders changed, as soon as the server says so.

Three ways, best first, chosen from what the server advertises and the account's connection cap
(`choose_mode`): NOTIFY (RFC 5465: one connection hears every watched folder, as untagged STATUS
responses while it IDLEs), IDLE (RFC 2177: one connection per folder, while the folders fit in
the cap with one connection left for syncing), else polling (the sync's own STATUS per folder,
with HIGHESTMODSEQ under CONDSTORE, every `poll_s`: see chunksync.sources.imap.watch).

A listening connection is opened outside the sync's pool, never compressed (IDLE waits on the
raw socket). When it drops (BYE, a reset, a restarted server) it is reopened after the mail
policy's backoff for the failure's category; every (re)connect reports its folders as changed,
since whatever happened while it was away was not heard, and so does every loss (a sync at once
catches up after a mere reset, or announces that the server is gone).
"""

from __future__ import annotations

import enum
import imaplib
import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace

from imapclient import imap_utf7

from chunksync.errors import categorize
from chunksync.retry import RetryPolicy
from chunksync.sources.imap.auth import Credentials
from chunksync.sources.imap.connection import Connection, open_connection
from chunksync.sources.imap.uri import ImapTarget

log = logging.getLogger("chunksync.imap.watch")

CHECK_SECONDS = 1.0  # how long one wait for the server lasts: the stop flag is read this often
RENEW_SECONDS = 600.0  # IDLE is ended and begun again well inside servers' 29-minute limit
NOTIFY_EVENTS = "(MessageNew MessageExpunge FlagChange)"
_QUIET = {b"OK"}  # "* OK Still here": not a change


class Mode(enum.StrEnum):
    NOTIFY = "notify"
    IDLE = "idle"
    POLL = "poll"


def choose_mode(
    capabilities: frozenset[str], folders: Sequence[str], cap: int, prefer: Mode | None = None
) -> Mode:
    """NOTIFY when offered (one connection), else IDLE per folder when the folders fit in the cap
    with one connection to spare for syncing, else polling. `prefer` picks another way when the
    server offers it (tests, a server whose NOTIFY misbehaves).

    NOTIFY only for folder names in plain ASCII: Dovecot 2.3 reports no change in a folder
    named in modified UTF-7 (`Entw&APw-rfe`), and names it in a raw UTF-8 literal when it is
    watched as `personal`; a change missed silently is worse than a connection per folder."""
    offered = {Mode.POLL}
    if "IDLE" in capabilities and cap >= 2:
        if "NOTIFY" in capabilities and all(f.isascii() for f in folders):
            offered.add(Mode.NOTIFY)
        if len(folders) <= cap - 1:
            offered.add(Mode.IDLE)
    if prefer is not None:
        return prefer if prefer in offered else Mode.POLL
    for mode in (Mode.NOTIFY, Mode.IDLE):
        if mode in offered:
            return mode
    return Mode.POLL


def connections_of(mode: Mode, folders: int) -> int:
    """The listening connections a mode holds (taken from the account's cap)."""
    return {Mode.NOTIFY: 1, Mode.IDLE: folders, Mode.POLL: 0}[mode]


def quoted(folder: str) -> str:
    """A folder name as a command argument: modified UTF-7, quoted."""
    encoded = str(imap_utf7.encode(folder).decode("ascii"))
    return '"' + encoded.replace("\\", "\\\\").replace('"', '\\"') + '"'


class Listener:
    """One listening connection (NOTIFY for `folders`, or IDLE on the one folder), on a thread
    of its own, calling `changed(folders)` for what the server reports and after every
    (re)connect; stops when `stop` is set."""

    def __init__(
        self,
        target: ImapTarget,
        credentials: Credentials,
        folders: Sequence[str],
        mode: Mode,
        changed: Callable[[Sequence[str]], None],
        stop: threading.Event,
        policy: RetryPolicy,
    ) -> None:
        self.target = replace(target, compress=False)
        self.credentials = credentials
        self.folders = list(folders)
        self.mode = mode
        self.changed = changed
        self.stop = stop
        self.policy = policy
        self.connects = 0
        self._rng = random.Random()
        name = f"chunksync-watch-{mode.value}-{self.folders[0] if mode is Mode.IDLE else 'all'}"
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def join(self, timeout_s: float) -> None:
        self.thread.join(timeout_s)

    def _run(self) -> None:
        failures = 0
        while not self.stop.is_set():
            try:
                conn = open_connection(self.target, self.credentials)
            except Exception as exc:
                failures += 1
                self._back_off(exc, failures)
                continue
            try:
                self._begin(conn)
                failures = 0
                self.connects += 1
                self.changed(self.folders)  # what happened while we were away was not heard
                self._listen(conn)
            except Exception as exc:
                failures += 1
                self.changed(self.folders)  # a sync now: it catches up, or says it failed
                self._back_off(exc, failures)
            finally:
                conn.close()

    def _back_off(self, exc: BaseException, failures: int) -> None:
        category = categorize(exc).category
        delay = self.policy.backoff(category, failures, self._rng)
        log.info(
            "watching %s: connection lost (%s, %s): again in %.1f s",
            self.target.host,
            type(exc).__name__,
            category,
            delay,
        )
        self.stop.wait(delay)

    def _begin(self, conn: Connection) -> None:
        if self.mode is Mode.IDLE:
            conn.client.select_folder(self.folders[0], readonly=True)
            return
        imaplib.Commands.setdefault("NOTIFY", ("AUTH", "SELECTED"))  # imaplib knows no NOTIFY
        boxes = " ".join(quoted(f) for f in self.folders)
        spec = f"SET (mailboxes ({boxes}) {NOTIFY_EVENTS})"
        typ, data = conn.client._imap._simple_command("NOTIFY", spec)
        if typ != "OK":
            raise conn.client.Error(f"NOTIFY refused: {data!r}")

    def _listen(self, conn: Connection) -> None:
        """IDLE, renewed every RENEW_SECONDS, until `stop`; a dead socket raises."""
        client = conn.client
        while not self.stop.is_set():
            client.idle()
            renew_at = time.monotonic() + RENEW_SECONDS
            try:
                while not self.stop.is_set() and time.monotonic() < renew_at:
                    started = time.monotonic()
                    try:
                        responses = client.idle_check(timeout=CHECK_SECONDS)
                    except client.Error as exc:  # a response IMAPClient cannot parse
                        self.changed(self.folders)  # something changed: the lot is synced
                        raise imaplib.IMAP4.abort(f"unreadable response: {exc}") from exc
                    if any(_is_bye(r) for r in responses):
                        raise imaplib.IMAP4.abort("the server said BYE")
                    folders = self._folders_in(responses)
                    if folders:
                        self.changed(folders)
                    elif not responses and time.monotonic() - started < CHECK_SECONDS / 2:
                        break  # woken with nothing to read: the socket is at EOF; DONE tells
            finally:
                if not self.stop.is_set():
                    client.idle_done()
        try:
            client.idle_done()
        except Exception:  # stopping: the connection is closed next anyway
            pass

    def _folders_in(self, responses: list[tuple[object, ...]]) -> list[str]:
        """The watched folders these untagged responses say changed."""
        found: set[str] = set()
        for response in responses:
            if not response or response[0] in _QUIET:
                continue
            if self.mode is Mode.IDLE:
                return list(self.folders)
            if response[0] == b"STATUS" and len(response) > 1:
                name = response[1]
                text = imap_utf7.decode(name) if isinstance(name, bytes) else str(name)
                found.update([f for f in self.folders if f == text] or self.folders)
        return sorted(found)


def _is_bye(response: tuple[object, ...]) -> bool:
    return bool(response) and response[0] == b"BYE"
