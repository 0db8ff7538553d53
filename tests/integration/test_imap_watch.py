"""Watching a mailbox on a real Dovecot: new mail stored while watching, each change announced
once to a signed webhook, whichever way the server is listened to, and through lost
connections and a restarted server."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from chunksync import webhooks
from chunksync.app import App
from chunksync.sources.imap import ImapSource
from chunksync.sources.imap.listen import Mode
from chunksync.sources.imap.watch import Watch, WatchOptions
from chunksync.sources.mail import mail_source
from tests.integration.mail_helpers import run_sync, stored
from tests.servers.dovecot import Mailbox, start_dovecot
from tests.servers.webhook_receiver import Receiver, webhook_receiver

pytestmark = pytest.mark.imap

SECRET = "watch-test-secret-1f3a"
EVENTUALLY_SECONDS = 60.0  # generous: the machine may be loaded; speed is the benchmark's


def message(n: int) -> bytes:
    head = f"From: a@example.com\r\nSubject: watch {n}\r\nMessage-ID: <w{n}@x>\r\n"
    return f"{head}\r\nhi {n}\r\n".encode()


@contextmanager
def watching(app: App, uri: str, receiver: Receiver, **options: Any) -> Iterator[Watch]:
    source = mail_source(app, uri)
    assert isinstance(source, ImapSource)
    sender = webhooks.Sender(webhooks.Target(receiver.url, SECRET))
    stop = threading.Event()
    watch = Watch(app, source, [uri], sender.send, WatchOptions(chunk_size=50, **options), stop)
    thread = threading.Thread(target=watch.run, daemon=True)
    thread.start()
    try:
        yield watch
    finally:
        stop.set()
        thread.join(30)
        sender.close()
        assert not thread.is_alive()


def wait_stored(app: App, count: int) -> float:
    """Seconds until the store holds `count` messages (polled; fails after a generous wait)."""
    started = time.monotonic()
    while time.monotonic() - started < EVENTUALLY_SECONDS:
        if len(stored(app)) >= count:
            return time.monotonic() - started
        time.sleep(0.02)
    raise AssertionError(f"the store holds {len(stored(app))} messages, not {count}")


def wait_listening(watch: Watch) -> None:
    deadline = time.monotonic() + EVENTUALLY_SECONDS
    while not (watch.listeners and all(x.connects for x in watch.listeners)):
        if watch.mode is Mode.POLL and watch.syncs:
            return
        assert time.monotonic() < deadline, "the watch never started listening"
        time.sleep(0.02)


def new_uids(receiver: Receiver) -> Counter[int]:
    return Counter(int(e["data"]["uid"]) for e in receiver.events("message.new"))


@pytest.mark.parametrize("prefer", [None, Mode.IDLE, Mode.POLL])
def test_appended_mail_is_stored_and_announced_once_signed(
    sqlite_app: App, mailbox: Mailbox, prefer: Mode | None
) -> None:
    for n in range(3):
        mailbox.deliver(message(n))
    uri = mailbox.uri(connections=3)
    run_sync(sqlite_app, uri)
    with webhook_receiver(fail_first=1) as receiver:  # the first POST fails: retried
        options = {"prefer": prefer, "poll_s": 0.3}
        with watching(sqlite_app, uri, receiver, **options) as watch:
            wait_listening(watch)
            assert watch.mode is (prefer or Mode.NOTIFY)  # Dovecot offers NOTIFY
            with mailbox.client() as other:
                other.append("INBOX", message(3))
            seconds = wait_stored(sqlite_app, 4)
            receiver.wait_for(lambda events: any(e["event"] == "message.new" for e in events))
            assert seconds < EVENTUALLY_SECONDS
        assert stored(sqlite_app)[("INBOX", 4)] == message(3)
        assert new_uids(receiver) == Counter({4: 1})  # the 3 synced before: no event
        event = receiver.events("message.new")[0]
        assert event["data"]["subject"] == "watch 3" and event["account"].startswith(mailbox.user)
        assert receiver.all_signed(SECRET)
        assert not receiver.all_signed("another secret")
        assert all(SECRET not in r.body.decode() for r in receiver.requests)


def test_flag_changes_and_expunges_are_announced(sqlite_app: App, mailbox: Mailbox) -> None:
    for n in range(4):
        mailbox.deliver(message(n))
    uri = mailbox.uri(connections=3)
    run_sync(sqlite_app, uri)
    with webhook_receiver() as receiver, watching(sqlite_app, uri, receiver) as watch:
        wait_listening(watch)
        with mailbox.client() as other:
            other.select_folder("INBOX")
            other.add_flags([1], [b"\\Flagged"])
            other.delete_messages([2])
            other.expunge()

        def both(events: list[dict[str, Any]]) -> bool:
            kinds = {e["event"] for e in events}
            return {"message.flags", "message.deleted"} <= kinds

        receiver.wait_for(both)
    flags = receiver.events("message.flags")
    assert [e["data"]["uid"] for e in flags] == [1] and "\\Flagged" in flags[0]["data"]["added"]
    assert [e["data"]["uid"] for e in receiver.events("message.deleted")] == [2]
    assert sorted(uid for (_f, uid) in stored(sqlite_app)) == [1, 3, 4]


def test_nothing_missed_nothing_twice_through_kicks_and_a_restart(
    sqlite_app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = start_dovecot()
    try:
        box = server.add_user()
        monkeypatch.setenv("TEST_IMAP_PASSWORD", box.password)
        monkeypatch.setenv("CHUNKSYNC_IMAP_PASSWORD_ENV", "TEST_IMAP_PASSWORD")
        box.deliver(message(0))
        uri = box.uri(connections=3)
        run_sync(sqlite_app, uri)
        with webhook_receiver() as receiver, watching(sqlite_app, uri, receiver) as watch:
            wait_listening(watch)
            sent = 1
            for round_ in range(3):
                with box.client() as other:
                    other.append("INBOX", message(sent))
                sent += 1
                server.doveadm("kick", box.user, check=False)  # every connection reset
                box.deliver(message(sent))  # arrives while nobody listens
                sent += 1
                if round_ == 1:
                    server.stop()
                    box.deliver(message(sent))  # arrives while the server is down
                    sent += 1
                    server.start()
                wait_stored(sqlite_app, sent)
            receiver.wait_for(lambda events: len(new_uids(receiver)) == sent - 1)
        assert stored(sqlite_app) == {("INBOX", u): raw for u, raw in box.server_messages().items()}
        assert new_uids(receiver) == Counter({uid: 1 for uid in range(2, sent + 1)})
        assert sum(x.connects for x in watch.listeners) >= 2  # it did reconnect
        assert receiver.all_signed(SECRET)
    finally:
        server.close()


def test_watch_stores_into_either_backend(app: App, mailbox: Mailbox) -> None:
    mailbox.deliver(message(0))
    uri = mailbox.uri()
    run_sync(app, uri)
    with webhook_receiver() as receiver, watching(app, uri, receiver) as watch:
        wait_listening(watch)
        with mailbox.client() as other:
            other.append("INBOX", message(1))
        wait_stored(app, 2)
        receiver.wait_for(lambda events: bool(events))
    assert stored(app) == {("INBOX", u): raw for u, raw in mailbox.server_messages().items()}
    assert new_uids(receiver) == Counter({2: 1}) and receiver.all_signed(SECRET)


@pytest.mark.parametrize(
    ("folders", "mode"),
    [
        (["INBOX", "Work Stuff", "[Archive] 2024"], Mode.NOTIFY),
        (["INBOX", "Work Stuff", "Entwürfe"], Mode.IDLE),  # no NOTIFY for non-ASCII names
    ],
)
def test_several_folders_each_heard_and_synced(
    sqlite_app: App, mailbox: Mailbox, folders: list[str], mode: Mode
) -> None:
    with mailbox.client() as c:
        for folder in folders[1:]:
            c.create_folder(folder)
    source = mail_source(sqlite_app, mailbox.uri())
    uris = source.folders(mailbox.uri(connections=4))
    assert len(uris) == 3
    for uri in uris:
        run_sync(sqlite_app, uri)
    sender_events: list[dict[str, Any]] = []
    stop = threading.Event()
    assert isinstance(source, ImapSource)
    options = WatchOptions(chunk_size=50)
    watch = Watch(sqlite_app, source, uris, sender_events.append, options, stop)
    thread = threading.Thread(target=watch.run, daemon=True)
    thread.start()
    try:
        wait_listening(watch)
        assert watch.mode is mode
        assert len(watch.listeners) == (3 if mode is Mode.IDLE else 1)
        with mailbox.client() as other:
            for n, folder in enumerate(folders):
                other.append(folder, message(n))
        wait_stored(sqlite_app, 3)
        deadline = time.monotonic() + EVENTUALLY_SECONDS
        while len(sender_events) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        stop.set()
        thread.join(30)
    assert sorted(e["path"] for e in sender_events) == sorted(folders)
    assert {folder for (folder, _uid) in stored(sqlite_app)} == set(folders)
