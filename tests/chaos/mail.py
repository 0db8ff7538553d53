"""The mail side of a chaos run: a Dovecot with N messages, reached through the faulty proxy.

Faults: the proxy resets every connection, stalls reads past the IMAP socket timeout, or caps
the bandwidth; Dovecot kicks the user (`doveadm kick`), drops to one connection per user and IP
for a while (`mail_max_userip_connections`, reloaded), or restarts. At the end the store must
hold exactly the server's messages, byte for byte: none missing, none twice, none altered.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from tests.chaos.proxy import FaultyProxy
from tests.servers.dovecot import CONFIG, DovecotServer, Mailbox, start_dovecot

PASSWORD_ENV = "CHUNKSYNC_CHAOS_IMAP_PW"
MAX_CONNECTIONS = 40
FETCH_BATCH = 1000
KINDS = (
    "proxy_reset",
    "proxy_stall",
    "proxy_slow",
    "dovecot_kick",
    "dovecot_limit",
    "dovecot_restart",
)


def message(n: int, rng: random.Random) -> bytes:
    """A message of varied size and shape: CRLF, some 8-bit bytes, some without Message-ID."""
    head = f"From: sender{n % 13}@example.com\r\nTo: me@example.com\r\nSubject: chaos {n}\r\n"
    if n % 17:
        head += f"Message-ID: <chaos{n}@example.com>\r\n"
    body = bytearray()
    for line in range(rng.randint(3, 60)):
        body += f"line {line} of message {n}: ".encode() + bytes(rng.choices(range(32, 127), k=40))
        if n % 11 == 0:
            body += b" caf\xe9 \xff"  # 8-bit bytes, kept as they are
        body += b"\r\n"
    return head.encode() + b"\r\n" + bytes(body)


@dataclass(slots=True)
class MailVerdict:
    server: int = 0
    stored: int = 0
    lost: int = 0
    duplicated: int = 0
    altered: int = 0


class MailSide:
    def __init__(
        self, messages: int, seed: int, timeout_s: int, connections: int, base_rate: float
    ) -> None:
        self.messages = messages
        self.base_rate = base_rate
        self.rng = random.Random(seed)
        self.timeout_s = timeout_s
        self.connections = connections
        self.server: DovecotServer | None = None
        self.box: Mailbox | None = None
        self.proxy: FaultyProxy | None = None

    def start(self) -> MailSide:
        self.server = start_dovecot(max_connections=MAX_CONNECTIONS)
        self.box = self.server.add_user()
        for n in range(self.messages):
            self.box.deliver(message(n, self.rng), flags="S" if n % 3 == 0 else "")
        self.proxy = FaultyProxy("127.0.0.1", self.server.port, self.base_rate).start()
        return self

    def close(self) -> None:
        if self.proxy is not None:
            self.proxy.stop()
        if self.server is not None:
            self.server.close()

    @property
    def password(self) -> str:
        assert self.box is not None
        return self.box.password

    @property
    def uri(self) -> str:
        assert self.box is not None and self.proxy is not None
        query = f"timeout={self.timeout_s}&connections={self.connections}"
        return f"imap://{self.box.user}@127.0.0.1:{self.proxy.port}/INBOX?{query}"

    def env(self) -> dict[str, str]:
        return {"CHUNKSYNC_IMAP_PASSWORD_ENV": PASSWORD_ENV, PASSWORD_ENV: self.password}

    # --- faults -----------------------------------------------------------------

    def inject(self, kind: str) -> str:
        assert self.server is not None and self.box is not None and self.proxy is not None
        if kind == "proxy_reset":
            return f"reset {self.proxy.reset()} connection(s)"
        if kind == "proxy_stall":
            seconds = self.timeout_s + self.rng.uniform(1.0, 3.0)
            self.proxy.stall(seconds)
            return f"reads stalled {seconds:.1f} s (timeout {self.timeout_s} s)"
        if kind == "proxy_slow":
            rate, seconds = self.rng.choice([20_000, 50_000, 100_000]), self.rng.uniform(3, 8)
            self.proxy.slow(rate, seconds)
            return f"{rate // 1000} kB/s for {seconds:.1f} s"
        if kind == "dovecot_kick":
            self.server.doveadm("kick", self.box.user, check=False)
            return f"doveadm kick {self.box.user}"
        if kind == "dovecot_limit":
            seconds = self.rng.uniform(2.0, 5.0)
            self._limit(1)
            time.sleep(seconds)  # the fault's duration, not a wait for some state
            self._limit(MAX_CONNECTIONS)
            return f"1 connection per user and IP for {seconds:.1f} s"
        if kind == "dovecot_restart":
            self.server.stop()
            self.server.start()
            return "restarted"
        raise ValueError(f"unknown mail fault {kind}")

    def _limit(self, connections: int) -> None:
        assert self.server is not None
        root = self.server.root
        text = CONFIG.format(root=root, port=self.server.port, max_connections=connections)
        self.server.conf.write_text(text, encoding="utf-8")
        self.server.doveadm("reload", check=False)

    def counts(self) -> dict[str, int]:
        assert self.proxy is not None
        c = self.proxy.counts
        return {"connections": c.connections, "resets": c.resets}

    # --- the check -----------------------------------------------------------------

    def server_messages(self) -> dict[int, bytes]:
        """UID -> the bytes Dovecot serves, straight from it (not through the proxy), fetched
        in batches: one command naming 20,000 UIDs would be too long for the server."""
        assert self.box is not None
        found: dict[int, bytes] = {}
        with self.box.client() as c:
            c.select_folder("INBOX", readonly=True)
            uids = sorted(int(u) for u in c.search())
            for start in range(0, len(uids), FETCH_BATCH):
                batch = uids[start : start + FETCH_BATCH]
                data = c.fetch(batch, ["BODY.PEEK[]"])
                found.update({int(uid): bytes(d[b"BODY[]"]) for uid, d in data.items()})
        return found

    def check(self, stored: dict[Any, bytes]) -> MailVerdict:
        """`stored`: (folder, uid) -> raw, as the store holds them."""
        on_server = self.server_messages()
        here = {int(uid): raw for (_folder, uid), raw in stored.items()}
        v = MailVerdict(server=len(on_server), stored=len(stored))
        v.lost = sum(1 for uid in on_server if uid not in here)
        v.altered = sum(1 for uid, raw in on_server.items() if uid in here and here[uid] != raw)
        expected = Counter(on_server.values())
        for raw, n in Counter(stored.values()).items():
            if raw not in expected:
                v.altered += n  # bytes the server never served
            v.duplicated += max(0, n - expected[raw]) if raw in expected else 0
        return v
