"""The one duration syntax (chunksync.durations)."""

from __future__ import annotations

import pytest

from chunksync.durations import format_duration, parse_duration
from chunksync.exceptions import ConfigurationError


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("45s", 45),
        ("15m", 900),
        ("1.5h", 5400),
        ("30d", 2_592_000),
        ("2w", 1_209_600),
        (" 15M ", 900),
        ("90", 90),
        (".5m", 30),
        (12, 12),
        (2.5, 2.5),
    ],
)
def test_units(text: str | float, seconds: float) -> None:
    assert parse_duration(text) == seconds


def test_a_bare_number_is_in_the_options_unit() -> None:
    assert parse_duration("30", bare="d") == 30 * 86400
    assert parse_duration(2, bare="m") == 120


@pytest.mark.parametrize("text", ["soon", "15 minutes", "1y", "", "1e3", "m"])
def test_mistakes_are_one_sentence(text: str) -> None:
    with pytest.raises(ConfigurationError, match=r"write a number with a unit of s, m, h, d or w"):
        parse_duration(text, what="SLA")


def test_a_negative_duration_is_named_so() -> None:
    with pytest.raises(
        ConfigurationError, match=r"^the SLA '-5s' is negative: it must be positive$"
    ):
        parse_duration("-5s", what="SLA")


def test_formatting_picks_the_largest_exact_unit() -> None:
    assert [format_duration(s) for s in (45, 900, 5400, 86400, 1_209_600)] == [
        "45s",
        "15m",
        "90m",
        "1d",
        "2w",
    ]
