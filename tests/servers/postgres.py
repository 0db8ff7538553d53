"""PostgreSQL for the tests: a throwaway cluster (to be built with the PostgreSQL backend)."""

from __future__ import annotations

import pytest

from tests.servers import missing_server


@pytest.fixture
def pg_url() -> str:
    missing_server("the PostgreSQL test cluster is not built yet")
    raise AssertionError("unreachable")
