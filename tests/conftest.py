"""Fixtures shared by every test: database URLs for each backend and an App on them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from chunksync.app import App

pytest_plugins = ["tests.servers.postgres", "tests.servers.dovecot"]

BACKENDS = ["sqlite", "postgres"]


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'chunksync.db'}"


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The same test on every backend: a fresh SQLite file, a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'chunksync.db'}"
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
def app(db_url: str) -> Iterator[App]:
    with App(db_url) as a:
        yield a


@pytest.fixture
def sqlite_app(sqlite_url: str) -> Iterator[App]:
    with App(sqlite_url) as a:
        yield a
