"""How dependencies are declared in a registry and shown: pure, no database."""

from __future__ import annotations

import pytest

from chunksync.deps import view
from chunksync.deps.gate import DepState, Flow
from chunksync.deps.model import Limits, Rate
from chunksync.deps.operate import is_pattern
from chunksync.deps.store import Dependency
from chunksync.registry import Registry


def test_the_registry_finds_an_exact_name_else_the_most_specific_pattern() -> None:
    r = Registry()
    r.declare_dependency("imap://*", Limits(connections=2))
    r.declare_dependency("imap://*@imap.gmail.com", Limits(connections=15))
    r.declare_dependency("imap://bob@imap.gmail.com", Limits(connections=1))
    assert r.declared_limits("imap://alice@imap.gmail.com") == Limits(connections=15)
    assert r.declared_limits("imap://bob@imap.gmail.com") == Limits(connections=1)
    assert r.declared_limits("imap://carol@mail.example.com") == Limits(connections=2)
    assert r.declared_limits("job://api") is None
    r.declare_dependency("imap://*", Limits(connections=3))  # a later one replaces it
    assert r.declared_limits("imap://carol@mail.example.com") == Limits(connections=3)


@pytest.mark.parametrize(
    ("name", "pattern"),
    [("imap://*@imap.gmail.com", True), ("job://h?st", True), ("a[bc]", True), ("api", False)],
)
def test_patterns(name: str, pattern: bool) -> None:
    assert is_pattern(name) is pattern


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(None, "-"), (0.4, "0s"), (59, "59s"), (303, "5m 03s"), (7500, "2h 05m"), (273600, "3d 04h")],
)
def test_durations(seconds: float | None, shown: str) -> None:
    assert view.duration(seconds) == shown


def test_a_gated_dependency_is_shown_with_its_age_and_a_full_budget_as_full() -> None:
    dep = Dependency(
        name="imap://alice@imap.gmail.com",
        limits=Limits(15, Rate(250.0, 1.0), 50),
        state=DepState(tokens=10.0, flow=Flow.STOPPED, gated_since=1000.0),
        capacity=None,
        in_flight=2,
        permits=2,  # capped: the slots in use are the permits held (plus extra slots)
        extra_slots=1,
    )
    shown = view.shown(dep, now=1303.0)
    assert (shown["tokens"], shown["capacity"], shown["slots_in_use"]) == (10.0, 10.0, 3)
    assert shown["gated_since"] == "1970-01-01T00:16:40+00:00" and shown["gated_for_s"] == 303
    assert view.row(dep, 1303.0) == [
        "imap://alice@imap.gmail.com",
        "stopped",
        "10/10",
        "3/15",
        "250/s burst 50",
        "0/0/0",
        "0",
        "5m 03s",
    ]
    flowing = Dependency("api", Limits(), DepState(tokens=4.5, gated_since=None), 10.0)
    assert view.gated_for(flowing, 2000.0) is None and view.row(flowing, 0)[2:4] == [
        "4.5/10",
        "0/-",
    ]
