"""The pure parts of schedules, chunk search and payload display: cron ticks in UTC, what a
schedule may hold, LIKE patterns taken literally, payloads redacted by structure."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from chunksync.exceptions import ConfigurationError
from chunksync.schedules import check, next_tick
from chunksync.search import like_pattern
from chunksync.web.views import shown_payload


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def test_next_tick_is_strictly_after_and_in_utc() -> None:
    assert next_tick("*/15 * * * *", at("2026-01-01T10:07:00")) == at("2026-01-01T10:15:00")
    assert next_tick("*/15 * * * *", at("2026-01-01T10:15:00")) == at("2026-01-01T10:30:00")
    assert next_tick("@daily", at("2026-01-01T10:07:00")) == at("2026-01-02T00:00:00")


@pytest.mark.parametrize(
    ("name", "cron", "command", "complaint"),
    [
        ("ok", "* * *", ["status"], "five fields"),
        ("ok", "* * * * * *", ["status"], "five fields"),
        ("ok", "99 * * * *", ["status"], "not a cron expression"),
        ("bad name", "@daily", ["status"], "schedule name"),
        ("ok", "@daily", [], "needs a command"),
        ("ok", "@daily", ["worker"], "cannot be scheduled"),
        ("ok", "@daily", ["--app", "x:y", "status"], "command's name"),
    ],
)
def test_a_schedule_that_could_not_run_is_refused(
    name: str, cron: str, command: list[str], complaint: str
) -> None:
    with pytest.raises(ConfigurationError, match=complaint):
        check(name, cron, command)


def test_like_patterns_take_wildcards_literally() -> None:
    assert like_pattern("  ") is None
    assert like_pattern("Paris") == "%Paris%"
    assert like_pattern("50%_a\\b") == "%50\\%\\_a\\\\b%"


def test_payloads_are_redacted_by_structure() -> None:
    shown = shown_payload(
        {
            "password": "hunter22",
            "nested": [{"api_key": "abcdefgh", "url": "imaps://bob:pw1234@host/INBOX"}],
            "n": 3,
            "token": None,
        }
    )
    assert shown == {
        "password": "***",
        "nested": [{"api_key": "***", "url": "imaps://bob:***@host/INBOX"}],
        "n": 3,
        "token": None,
    }
