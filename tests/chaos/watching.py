"""The watching side of a chaos run: once the mail queue is synced, `sync --watch`'s Watch runs
through the faulty proxy while another client appends messages straight to Dovecot, and the
proxy resets every connection, Dovecot kicks the user, or Dovecot restarts, between appends.

At the end every appended message must be in the store (nothing missed) and announced once to
a local webhook receiver, signed (nothing twice): the store is compared with the server by
MailSide.check, the events by UID.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from chunksync import webhooks
from chunksync.sources.imap.source import ImapSource
from chunksync.sources.imap.watch import Watch, WatchOptions
from chunksync.sources.mail import mail_source
from chunksync.store import MessageStore
from tests.chaos.mail import MailSide, MailVerdict, message
from tests.servers.webhook_receiver import webhook_receiver

FAULTS = ("proxy_reset", "dovecot_kick", "dovecot_restart")
SECRET = "chaos-watch-secret"
SETTLE_SECONDS = 120.0  # for the last appends to be stored and announced, faults and all
FIRST_UID = 1_000_000  # appended messages' numbers, apart from the synced ones


@dataclass(slots=True)
class WatchVerdict:
    appended: int = 0
    store: MailVerdict = field(default_factory=MailVerdict)
    announced: int = 0  # appended messages announced (message.new) at least once
    missed: int = 0  # appended messages never announced
    twice: int = 0  # announcements past the first of a message
    unsigned: int = 0
    faults: list[str] = field(default_factory=list)
    reconnects: int = 0

    @property
    def ok(self) -> bool:
        s = self.store
        return not (s.lost or s.duplicated or s.altered or self.missed or self.twice) and (
            not self.unsigned
        )


def watch_phase(
    app: Any, mail: MailSide, rng: random.Random, appends: int, say: Callable[[str], None]
) -> WatchVerdict:
    assert mail.box is not None
    verdict = WatchVerdict()
    source = mail_source(app, mail.uri)
    assert isinstance(source, ImapSource)
    synced = set(mail.server_messages())
    with webhook_receiver() as receiver:
        sender = webhooks.Sender(webhooks.Target(receiver.url, SECRET))
        stop = threading.Event()
        watch = Watch(app, source, [mail.uri], sender.send, WatchOptions(chunk_size=100), stop)
        thread = threading.Thread(target=watch.run, name="chaos-watch", daemon=True)
        thread.start()
        try:
            for n in range(appends):
                with mail.box.client() as other:
                    other.append("INBOX", message(FIRST_UID + n, rng))
                verdict.appended += 1
                if n % 4 == 3:
                    kind = rng.choice(FAULTS)
                    verdict.faults.append(f"{kind}: {mail.inject(kind)}")
                time.sleep(rng.uniform(0.05, 0.4))  # the gap between two appends, not a wait
            appended = set(mail.server_messages()) - synced
            _settle(app, watch, receiver.events, appended)
        finally:
            stop.set()
            thread.join(60)
            sender.close()
        verdict.reconnects = sum(x.connects for x in watch.listeners)
        uids = Counter(int(e["data"]["uid"]) for e in receiver.events("message.new"))
        verdict.unsigned = 0 if receiver.all_signed(SECRET) else 1
    rows = MessageStore(app.backend).iter_messages()
    verdict.store = mail.check({(r["folder"], int(r["uid"])): bytes(r["raw"]) for r in rows})
    verdict.announced = sum(1 for uid in appended if uids[uid])
    verdict.missed = len(appended) - verdict.announced
    verdict.twice = sum(max(0, n - 1) for n in uids.values())
    say(f"  watched {appends} appends through {len(verdict.faults)} faults")
    return verdict


def _settle(
    app: Any, watch: Watch, events: Callable[[], list[dict[str, Any]]], appended: set[int]
) -> None:
    """Until every appended message is stored and announced, or SETTLE_SECONDS pass (then the
    verdict says what is missing)."""
    store = MessageStore(app.backend)
    deadline = time.monotonic() + SETTLE_SECONDS
    while time.monotonic() < deadline:
        key = watch.looks.get("INBOX", (None, {}))[0]
        stored = set() if key is None else {int(r["uid"]) for r in store.window(key, 0, 2**62)}
        announced = {int(e["data"]["uid"]) for e in events() if e["event"] == "message.new"}
        if appended <= stored and appended <= announced:
            return
        time.sleep(0.2)
