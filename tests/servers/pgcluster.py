"""A throwaway PostgreSQL cluster: initdb into a temp dir, a free loopback port, then stop.

Shared by the test fixtures (fsync off: a test database is disposable) and the benchmarks
(durable: fsync and synchronous_commit on, PostgreSQL's defaults). The server refuses to run as
root, so when we are root every server program runs as the `postgres` OS user (runuser), in a
directory that user owns.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg import sql

PG_BIN = Path(os.environ.get("CHUNKSYNC_PG_BIN", "/usr/lib/postgresql/15/bin"))
SERVER_USER = "postgres"
PASSWORD_USER = "chunksync_pw"  # the one role that must give a password (scram), for the tests
START_TIMEOUT_SECONDS = 60
NOT_INSTALLED = "PostgreSQL 15 is not installed: run 'bash scripts/test-servers.sh'"


def available(bin_dir: Path = PG_BIN) -> bool:
    return (bin_dir / "initdb").is_file() and (bin_dir / "pg_ctl").is_file()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class PgCluster:
    """`start()` it, hand out `url(dbname)`, `stop()` it (which deletes everything)."""

    def __init__(
        self,
        *,
        durable: bool,
        bin_dir: Path = PG_BIN,
        max_connections: int = 100,
        settings: dict[str, str] | None = None,
    ):
        self.durable = durable
        self.bin_dir = bin_dir
        self.max_connections = max_connections
        self.settings = dict(settings or {})  # more postgresql.conf lines (a benchmark's)
        self.port = 0
        self.root: Path | None = None

    @property
    def data(self) -> Path:
        assert self.root is not None
        return self.root / "data"

    def _run(self, *args: str) -> None:
        command = [str(self.bin_dir / args[0]), *args[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", SERVER_USER, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{args[0]} failed ({done.returncode}): {done.stderr.strip()}")

    def start(self) -> PgCluster:
        self.root = Path(tempfile.mkdtemp(prefix="chunksync-pg-"))
        if os.geteuid() == 0:
            user = pwd.getpwnam(SERVER_USER)
            os.chown(self.root, user.pw_uid, user.pw_gid)
        init = ["initdb", "-D", str(self.data), "-U", "postgres", "-E", "UTF8", "--locale=C"]
        self._run(*init, "--auth=trust", *([] if self.durable else ["--no-sync"]))
        (self.data / "pg_hba.conf").write_text(
            "local all all trust\n"
            f"host all {PASSWORD_USER} 127.0.0.1/32 scram-sha-256\n"
            "host all all 127.0.0.1/32 trust\n",
            encoding="utf-8",
        )
        self.port = free_port()
        settings = {
            "port": str(self.port),
            "listen_addresses": "'127.0.0.1'",
            "unix_socket_directories": f"'{self.root}'",
            "max_connections": str(self.max_connections),
            "shared_buffers": "'128MB'",
            "log_min_messages": "warning",
        }
        if not self.durable:  # tests only: a crash loses a disposable database
            settings |= {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}
        settings |= self.settings
        with (self.data / "postgresql.conf").open("a", encoding="utf-8") as conf:
            conf.writelines(f"{k} = {v}\n" for k, v in settings.items())
        log = str(self.root / "server.log")
        timeout = str(START_TIMEOUT_SECONDS)
        self._run("pg_ctl", "-D", str(self.data), "-l", log, "-w", "-t", timeout, "start")
        return self

    def stop(self) -> None:
        if self.root is None:
            return
        try:
            mode = "fast" if self.durable else "immediate"
            self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None

    def url(self, dbname: str = "postgres", user: str = "postgres", password: str = "") -> str:
        secret = f":{password}" if password else ""
        return f"postgresql://{user}{secret}@127.0.0.1:{self.port}/{dbname}"

    def admin(self, statement: sql.Composed, dbname: str = "postgres") -> None:
        with psycopg.connect(self.url(dbname), autocommit=True) as conn:
            conn.execute(statement)

    def create_database(self, name: str, template: str = "template1") -> str:
        self.admin(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(template)
            )
        )
        return self.url(name)

    def drop_database(self, name: str) -> None:
        self.admin(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@contextmanager
def throwaway(
    *, durable: bool, max_connections: int = 100, settings: dict[str, str] | None = None
) -> Iterator[PgCluster]:
    """A started cluster for a benchmark or a script, deleted when the block ends. Without
    PostgreSQL 15 the process exits (status 1) with one sentence saying how to install it."""
    if not available():
        raise SystemExit(NOT_INSTALLED)
    cluster = PgCluster(durable=durable, max_connections=max_connections, settings=settings)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()
