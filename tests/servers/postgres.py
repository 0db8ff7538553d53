"""PostgreSQL for the tests: one throwaway cluster per session, a fresh database per test,
owned by a plain role (not a superuser: row-level security applies, as in production).

The cluster runs with fsync off (tests only). A template database holds the migrated schema, so
each test's database is a cheap `CREATE DATABASE ... TEMPLATE` copy, dropped afterwards.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator

import pytest

from tests.servers import missing_server
from tests.servers.pgcluster import PASSWORD_USER, PG_BIN, PgCluster, available

TEMPLATE = "chunksync_template"
OWNER = "chunksync_app"  # the plain role that owns the tests' databases
_numbers = itertools.count(1)


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    if not available():
        missing_server(
            f"PostgreSQL 15 is not installed ({PG_BIN}/initdb not found): run "
            "'bash scripts/test-servers.sh' (apt-get install postgresql-15) or set CHUNKSYNC_PG_BIN"
        )
    from psycopg import sql

    from chunksync.backends.postgres import PostgresBackend

    cluster = PgCluster(durable=False).start()
    try:
        cluster.admin(
            sql.SQL("CREATE ROLE {} LOGIN SUPERUSER PASSWORD 'right-secret'").format(
                sql.Identifier(PASSWORD_USER)
            )
        )
        # chunksync runs as a plain role that owns its tables, as in production: row-level
        # security (forced, migration 0017) applies to every test. The role's default scope
        # '*' serves the tests' own raw SQL; chunksync makes the setting itself on each
        # connection (the fail-closed tests use roles without a default: `pg_owned`).
        for statement, names in (
            ("CREATE ROLE {} LOGIN NOSUPERUSER NOBYPASSRLS", [OWNER]),
            ("ALTER ROLE {} SET chunksync.tenant = '*'", [OWNER]),
            ("CREATE DATABASE {} OWNER {}", [TEMPLATE, OWNER]),
        ):
            cluster.admin(sql.SQL(statement).format(*map(sql.Identifier, names)))
        PostgresBackend(cluster.url(TEMPLATE, user=OWNER)).close()
        yield cluster
    finally:
        cluster.stop()


def _new_name(prefix: str) -> str:
    return f"{prefix}_{os.getpid()}_{next(_numbers)}"


@pytest.fixture
def pg_url(pg_cluster: PgCluster) -> Iterator[str]:
    """A fresh database with the chunksync schema, for this test only."""
    from psycopg import sql

    name = _new_name("t")
    pg_cluster.admin(
        sql.SQL("CREATE DATABASE {} TEMPLATE {} OWNER {}").format(
            *map(sql.Identifier, (name, TEMPLATE, OWNER))
        )
    )
    yield pg_cluster.url(name, user=OWNER)
    pg_cluster.drop_database(name)


@pytest.fixture
def pg_empty_url(pg_cluster: PgCluster) -> Iterator[str]:
    """A fresh, empty database (no schema), for migration tests."""
    name = _new_name("e")
    url = pg_cluster.create_database(name, "template0")
    yield url
    pg_cluster.drop_database(name)


@pytest.fixture
def pg_owned(pg_cluster: PgCluster) -> Iterator[tuple[str, str]]:
    """A database owned by a plain role, as in production (a superuser bypasses row-level
    security): (its URL as that role, the name of another plain role, for a tenant's)."""
    from psycopg import sql

    n = f"{os.getpid()}_{next(_numbers)}"
    owner, tenant_role, name = f"owner_{n}", f"tenant_role_{n}", f"rls_{n}"

    def admin(text: str, *names: str, dbname: str = "postgres") -> None:
        pg_cluster.admin(sql.SQL(text).format(*map(sql.Identifier, names)), dbname=dbname)

    admin("CREATE ROLE {} LOGIN NOSUPERUSER NOBYPASSRLS", owner)
    admin("CREATE ROLE {} LOGIN NOSUPERUSER NOBYPASSRLS", tenant_role)
    admin("CREATE DATABASE {} OWNER {}", name, owner)
    admin("GRANT ALL ON SCHEMA public TO {}", owner, dbname=name)
    try:
        yield pg_cluster.url(name, user=owner), tenant_role
    finally:
        pg_cluster.drop_database(name)
        for role in (tenant_role, owner):
            admin("DROP ROLE IF EXISTS {}", role)
