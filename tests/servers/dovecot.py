"""Dovecot for the tests: a throwaway server, started once per session in the foreground.

`dovecot -F -c CONF` with a config in a temp dir of its own (base_dir, state_dir and logs inside
it, so a system Dovecot is never touched), listening on a free loopback port: passwd-file auth,
plain text on loopback, Maildir storage owned by the `mail` user. Each test gets a fresh user
(`mailbox` fixture), so tests never see each other's mail and the server is never restarted
between them; a test that needs other settings starts its own server with `start_dovecot()`.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.servers import missing_server

START_TIMEOUT_SECONDS = 20.0
HOW_TO_INSTALL = "Dovecot is not installed: apt-get install dovecot-imapd (or make test)"

CONFIG = """\
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
info_log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
login_trusted_networks = 127.0.0.0/8
mail_location = maildir:~/Maildir
mail_uid = mail
mail_gid = mail
first_valid_uid = 8
first_valid_gid = 8
mail_max_userip_connections = {max_connections}
mail_plugins = $mail_plugins
protocol imap {{
  mail_plugins = $mail_plugins imap_zlib
  mail_max_userip_connections = {max_connections}
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/users/%u
}}
userdb {{
  driver = static
  args = uid=mail gid=mail home={root}/home/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service stats {{
  unix_listener stats-reader {{
    mode = 0666
  }}
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class DovecotServer:
    root: Path
    port: int
    max_connections: int = 50
    process: subprocess.Popen[bytes] | None = None
    users: dict[str, str] = field(default_factory=dict)

    @property
    def conf(self) -> Path:
        return self.root / "dovecot.conf"

    @property
    def log(self) -> str:
        path = self.root / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["dovecot", "-F", "-c", str(self.conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = (
                    self.process.stderr.read().decode(errors="replace")
                    if self.process.stderr
                    else ""
                )
                raise RuntimeError(f"dovecot exited at start: {err}\n{self.log}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1.0) as s:
                    if s.recv(100).startswith(b"* OK"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"dovecot did not listen on port {self.port}:\n{self.log}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop the server (SIGKILL for a crash); its children go with its process group."""
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, sig)
        except ProcessLookupError:
            pass
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
        if self.process.stderr:
            self.process.stderr.close()
        self.process = None
        # Children (imap, imap-login) of a killed master may linger a moment: wait for the port.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                time.sleep(0.05)
            except OSError:
                return

    def close(self) -> None:
        """Stop the server and remove its temp dir (mail, config, logs)."""
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def doveadm(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["doveadm", "-c", str(self.conf), *args],
            capture_output=True,
            text=True,
            check=check,
            timeout=60,
        )

    def add_user(self, name: str | None = None, password: str | None = None) -> Mailbox:
        name = name or f"user{secrets.token_hex(4)}"
        password = password or secrets.token_hex(8)
        self.users[name] = password
        # One passwd-file per user: Dovecot notices a new file at once, while an edited shared
        # file within the same second of its last read could be served stale.
        (self.root / "users" / name).write_text(f"{name}:{{PLAIN}}{password}\n", encoding="utf-8")
        home = self.root / "home" / name
        for sub in ("cur", "new", "tmp"):
            (home / "Maildir" / sub).mkdir(parents=True, exist_ok=True)
        _chown_tree(self.root / "home" / name)
        return Mailbox(self, name, password)


@dataclass
class Mailbox:
    """One test user's mailbox on the server."""

    server: DovecotServer
    user: str
    password: str
    _seq: int = 0

    @property
    def maildir(self) -> Path:
        return self.server.root / "home" / self.user / "Maildir"

    def folder_path(self, folder: str = "INBOX") -> Path:
        return self.maildir if folder == "INBOX" else self.maildir / f".{folder}"

    def uri(self, folder: str = "INBOX", **options: Any) -> str:
        query = "&".join(f"{k}={v}" for k, v in options.items())
        return f"imap://{self.user}@127.0.0.1:{self.server.port}/{folder}" + (
            f"?{query}" if query else ""
        )

    def deliver(self, raw: bytes, folder: str = "INBOX", flags: str = "") -> Path:
        """Write a message straight into the server's Maildir (as the benchmark does)."""
        base = self.folder_path(folder)
        if not base.exists():
            for sub in ("cur", "new", "tmp"):
                (base / sub).mkdir(parents=True, exist_ok=True)
            (base / "maildirfolder").touch()
            _chown_tree(base)
        self._seq += 1
        name = f"{int(time.time())}.M{self._seq}P{os.getpid()}.test"
        path = base / "cur" / f"{name}:2,{flags}" if flags else base / "new" / name
        path.write_bytes(raw)
        uid = pwd.getpwnam("mail")
        os.chown(path, uid.pw_uid, uid.pw_gid)
        return path

    def client(self) -> Any:
        from imapclient import IMAPClient

        client = IMAPClient("127.0.0.1", port=self.server.port, ssl=False, timeout=30)
        client.login(self.user, self.password)
        return client

    def server_messages(self, folder: str = "INBOX") -> dict[int, bytes]:
        """UID -> the bytes the server serves, read with a plain client (for byte-exact checks)."""
        with self.client() as c:
            c.select_folder(folder, readonly=True)
            found = c.fetch(c.search(), ["BODY.PEEK[]"])
            return {int(uid): bytes(d[b"BODY[]"]) for uid, d in found.items()}

    def uidvalidity(self, folder: str = "INBOX") -> int:
        with self.client() as c:
            return int(c.folder_status(folder, ["UIDVALIDITY"])[b"UIDVALIDITY"])


def _chown_tree(path: Path) -> None:
    mail = pwd.getpwnam("mail")
    for dirpath, _dirs, files in os.walk(path):
        os.chown(dirpath, mail.pw_uid, mail.pw_gid)
        for name in files:
            os.chown(os.path.join(dirpath, name), mail.pw_uid, mail.pw_gid)


def start_dovecot(max_connections: int = 50) -> DovecotServer:
    """A new server in a temp dir of its own (readable by the mail user, unlike pytest's)."""
    if shutil.which("dovecot") is None or shutil.which("doveadm") is None:
        missing_server(HOW_TO_INSTALL)
    if os.geteuid() != 0:
        missing_server("the Dovecot test server runs its mail as the 'mail' user: run as root")
    root = Path(tempfile.mkdtemp(prefix="chunksync-dovecot-"))
    root.chmod(0o755)
    (root / "users").mkdir()
    (root / "home").mkdir()
    os.chown(root / "home", pwd.getpwnam("mail").pw_uid, pwd.getpwnam("mail").pw_gid)
    server = DovecotServer(root, free_port(), max_connections)
    server.conf.write_text(
        CONFIG.format(root=root, port=server.port, max_connections=max_connections),
        encoding="utf-8",
    )
    server.start()
    return server


@pytest.fixture(scope="session")
def dovecot() -> Iterator[DovecotServer]:
    server = start_dovecot()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def mailbox(dovecot: DovecotServer, monkeypatch: pytest.MonkeyPatch) -> Mailbox:
    """A fresh user on the session's Dovecot; its password is in $TEST_IMAP_PASSWORD."""
    box = dovecot.add_user()
    monkeypatch.setenv("TEST_IMAP_PASSWORD", box.password)
    monkeypatch.setenv("CHUNKSYNC_IMAP_PASSWORD_ENV", "TEST_IMAP_PASSWORD")
    return box
