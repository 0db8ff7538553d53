"""Watching latency: a message appended on the server by another client, to its row in the store.

A fresh Dovecot user gets BENCH_WATCH_BASE messages (default 1,000) written to its Maildir and
synced into a SQLite store; then `sync --watch`'s Watch runs (each way of listening the server
offers: NOTIFY, then IDLE) while another client APPENDs BENCH_WATCH_APPENDS messages (default
50), one at a time, a pause between them. Each latency is from the APPEND's reply to the moment
the message's row is read back from the store (polled every 2 ms on the side), so it covers the
notice, the incremental sync (plan, a worker, the FETCH, the write) and the commit.

Figures on a machine busy with other work measure the machine as much as the code. The last
line is `watch_latency_ms_p95=<v>`, for the way the server's capabilities choose (NOTIFY here).
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PAUSE_SECONDS = 0.2  # between appends: each is its own notice, as mail usually is
WAIT_SECONDS = 60.0  # a message not stored by then counts as failed


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def message(n: int) -> bytes:
    body = b"lorem ipsum dolor sit amet consectetur adipiscing elit\r\n" * 60
    return f"Subject: watch bench {n}\r\nMessage-ID: <wb{n}@x>\r\n\r\n".encode() + body


def measure(box: object, db: Path, mode: object, appends: int) -> list[float]:
    from tests.integration.mail_helpers import run_sync

    from chunksync.app import App
    from chunksync.sources.imap.watch import Watch, WatchOptions
    from chunksync.sources.mail import mail_source
    from chunksync.store import MessageStore

    uri = box.uri(connections=4)  # type: ignore[attr-defined]
    latencies: list[float] = []
    with App(f"sqlite:///{db}") as app:
        run_sync(app, uri, chunk_size=500, concurrency=2)
        source = mail_source(app, uri)
        stop = threading.Event()
        watch = Watch(app, source, [uri], lambda e: None, WatchOptions(prefer=mode), stop)  # type: ignore[arg-type]
        thread = threading.Thread(target=watch.run, daemon=True)
        thread.start()
        store = MessageStore(app.backend)
        try:
            while not (watch.listeners and all(x.connects for x in watch.listeners)):
                time.sleep(0.01)
            with box.client() as other:  # type: ignore[attr-defined]
                for n in range(appends):
                    reply = other.append("INBOX", message(n))
                    appended = time.monotonic()
                    uid = int(reply.split(b"]")[0].split()[-1])  # [APPENDUID validity uid]
                    key = watch.looks["INBOX"][0]
                    while store.get(key, uid) is None:  # type: ignore[arg-type]
                        if time.monotonic() - appended > WAIT_SECONDS:
                            raise RuntimeError(f"message {uid} not stored in {WAIT_SECONDS} s")
                        time.sleep(0.002)
                    latencies.append((time.monotonic() - appended) * 1000)
                    time.sleep(PAUSE_SECONDS)
        finally:
            stop.set()
            thread.join(30)
        print(f"  {watch.mode}: {watch.syncs} syncs", flush=True)
    return latencies


def main() -> int:
    from tests.servers.dovecot import start_dovecot

    from chunksync.sources.imap.listen import Mode

    base = int(os.environ.get("BENCH_WATCH_BASE", "1000"))
    appends = int(os.environ.get("BENCH_WATCH_APPENDS", "50"))
    server = start_dovecot(max_connections=50)
    p95 = {}
    try:
        for mode in (Mode.NOTIFY, Mode.IDLE):
            box = server.add_user()
            os.environ["BENCH_WATCH_PW"] = box.password
            os.environ["CHUNKSYNC_IMAP_PASSWORD_ENV"] = "BENCH_WATCH_PW"
            for n in range(base):
                box.deliver(message(100_000 + n), flags="S")
            server.doveadm("index", "-u", box.user, "INBOX", check=False)
            with tempfile.TemporaryDirectory() as tmp:
                got = measure(box, Path(tmp) / "watch.db", mode, appends)
            p95[mode] = percentile(got, 0.95)
            print(
                f"  {mode}: {len(got)} appends onto {base} messages: "
                f"p50 {statistics.median(got):.0f} ms, p95 {p95[mode]:.0f} ms, "
                f"max {max(got):.0f} ms",
                flush=True,
            )
    finally:
        server.close()
    print(f"watch_latency_ms_p95={p95[Mode.NOTIFY]:.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
