"""Real servers for the tests (PostgreSQL, Dovecot), each started by a session fixture."""

from __future__ import annotations

import os

import pytest

IN_CI = os.environ.get("CI", "").lower() == "true"


def missing_server(message: str) -> None:
    """In CI a missing server fails the test; on a laptop it skips, saying how to get it."""
    if IN_CI:
        pytest.fail(message, pytrace=False)
    pytest.skip(message)  # never in CI (CI=true fails above): only on a developer's machine
