"""The shared dependency state's pure rules: rates, limits, the gate and GCRA."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chunksync.deps import gate
from chunksync.deps.gate import DepState, Flow
from chunksync.deps.model import (
    Limits,
    Rate,
    dependencies_from,
    limits_for,
    limits_from,
    merge,
    parse_rate,
)
from chunksync.exceptions import ConfigurationError
from chunksync.retry import Gate, StressConfig

CONFIG = StressConfig(capacity=10.0, probe_min_interval_s=0.5, probe_interval_s=4.0)


@pytest.mark.parametrize(
    ("text", "per_s", "shown"),
    [
        ("250/s", 250.0, "250/s"),
        ("10000/10m", 10000 / 600, "10000/10m"),
        ("5/min", 5 / 60, "5/m"),
        ("3 / 2s", 1.5, "3/2s"),
        ("7/h", 7 / 3600, "7/h"),
        ("0.5/second", 0.5, "0.5/s"),
    ],
)
def test_rates_parse_and_print(text: str, per_s: float, shown: str) -> None:
    rate = parse_rate(text)
    assert rate.per_s == pytest.approx(per_s)
    assert str(rate) == shown
    assert parse_rate(str(rate)) == rate


@pytest.mark.parametrize("text", ["fast", "250", "0/s", "-1/s", "10/fortnight", "", None, 250])
def test_a_malformed_rate_is_one_sentence(text: object) -> None:
    with pytest.raises(ConfigurationError, match=r"rate .* (is not a rate|must allow)"):
        parse_rate(text)


def test_limits_are_checked_and_merged() -> None:
    limits = limits_from({"connections": 15, "rate": "250/s", "burst": 50}, "gmail")
    assert limits == Limits(15, Rate(250.0, 1.0), 50)
    assert merge(limits, {"rate": None, "connections": 4}, "gmail") == Limits(4, None, 50)
    for bad, says in [
        ({"connections": -1}, "connections of dependency gmail must be a whole number"),
        ({"connections": 1.5}, "connections of dependency gmail must be a whole number"),
        ({"burst": 0}, "burst of dependency gmail must be a whole number of at least 1"),
        ({"conections": 3}, "unknown key.*conections.*known are connections, rate, burst"),
    ]:
        with pytest.raises(ConfigurationError, match=says):
            limits_from(bad, "gmail")


def test_the_most_specific_declaration_applies() -> None:
    declared = dependencies_from(
        {
            "dependencies": {
                "imap://*": {"connections": 20},
                "imap://*@imap.gmail.com": {"connections": 15, "rate": "250/s"},
                "imap://alice@imap.gmail.com": {"connections": 2},
            }
        },
        "deps.toml",
    )
    assert limits_for("imap://alice@imap.gmail.com", declared) == (
        "imap://alice@imap.gmail.com",
        Limits(2),
    )
    assert limits_for("imap://bob@imap.gmail.com", declared) == (
        "imap://*@imap.gmail.com",
        Limits(15, Rate(250.0, 1.0)),
    )
    assert limits_for("imap://bob@example.org", declared) == ("imap://*", Limits(20))
    assert limits_for("api://example.org", declared) is None


def test_faults_start_probing_and_only_one_probe_goes_per_interval() -> None:
    s = gate.fresh(CONFIG)
    s = gate.record(s, CONFIG, cost=4.0, successes=0, probe_succeeded=False, now=100.0)
    assert s.flow is Flow.OK and s.tokens == 6.0
    s = gate.record(s, CONFIG, cost=2.0, successes=0, probe_succeeded=False, now=100.5)
    assert s.flow is Flow.OK and s.tokens == 4.0  # below the stress line, not by the hysteresis
    s = gate.record(s, CONFIG, cost=1.0, successes=0, probe_succeeded=False, now=101.0)
    assert s.flow is Flow.PROBING and s.gated_since == 101.0 and s.next_probe_at == 101.5
    assert gate.admit(s, CONFIG, 101.2) == (Gate.HOLD, s)
    probes = []
    for tenth in range(1010, 1200):  # the fleet asks every 0.1 s; the dependency stays down
        now = tenth / 10
        verdict, s = gate.admit(s, CONFIG, now)
        if verdict is Gate.PROBE:
            probes.append(now)
            s = gate.record(s, CONFIG, cost=1.0, successes=0, probe_succeeded=False, now=now)
    # 0.5 s after it shut, then intervals 0.5, 1, 2, 4, 4, ... (capped at probe_interval_s)
    assert probes == [101.5, 102.0, 103.0, 105.0, 109.0, 113.0, 117.0]


def test_a_successful_probe_reopens_with_hysteresis() -> None:
    s = DepState(tokens=1.0, flow=Flow.PROBING, next_probe_at=5.0, probe_interval_s=1.0)
    verdict, s = gate.admit(s, CONFIG, 5.0)
    assert verdict is Gate.PROBE
    s = gate.record(s, CONFIG, cost=0.0, successes=1, probe_succeeded=True, now=5.2)
    assert s.flow is Flow.OK and s.tokens == 5.0 and s.gated_since is None  # at the stress line
    s = gate.record(s, CONFIG, cost=1.0, successes=0, probe_succeeded=False, now=5.3)
    assert s.flow is Flow.OK  # one stray failure right after recovery: still flowing


def test_successes_while_probing_reopen_only_without_faults() -> None:
    s = DepState(tokens=1.0, flow=Flow.PROBING, next_probe_at=9.0, probe_interval_s=1.0)
    mixed = gate.record(s, CONFIG, cost=1.0, successes=3, probe_succeeded=False, now=5.0)
    assert mixed.flow is Flow.PROBING
    clean = gate.record(s, CONFIG, cost=0.0, successes=1, probe_succeeded=False, now=5.0)
    assert clean.flow is Flow.OK


def test_an_operator_stop_holds_everything_until_started() -> None:
    s = gate.stop(gate.fresh(CONFIG), now=3.0)
    assert s.flow is Flow.STOPPED and s.gated
    assert gate.admit(s, CONFIG, 1e9)[0] is Gate.HOLD
    assert gate.record(s, CONFIG, cost=0, successes=5, probe_succeeded=True, now=4.0) == s
    assert gate.start(CONFIG) == gate.fresh(CONFIG)


def test_gcra_grants_the_burst_then_the_rate() -> None:
    limits = Limits(rate=parse_rate("10/s"), burst=5)
    s = gate.fresh(CONFIG)
    granted, s = gate.take(s, limits, 8, now=0.0)
    assert granted == 5
    assert gate.take(s, limits, 1, now=0.05)[0] == 0
    assert gate.wait_s(s, limits, 1, now=0.05) == pytest.approx(0.05)
    granted, s = gate.take(s, limits, 3, now=0.35)
    assert granted == 3
    assert gate.take(s, Limits(), 1000, now=0.0)[0] == 1000  # no rate: everything


def test_a_reservation_spaces_its_units_at_the_rate_after_the_burst() -> None:
    limits = Limits(rate=parse_rate("10/s"), burst=3)
    offsets, s = gate.reserve(gate.fresh(CONFIG), limits, 8, now=0.0, ahead_s=0.5)
    # the burst at once, then one per 0.1 s, none further than 0.5 s ahead
    assert offsets == pytest.approx([0.0, 0.0, 0.0, 0.1, 0.2, 0.3, 0.4, 0.5])
    more, s = gate.reserve(s, limits, 5, now=0.0, ahead_s=0.5)
    assert more == []  # the next unit is 0.6 s ahead
    assert gate.reserve(s, limits, 1, now=0.2, ahead_s=0.5)[0] == pytest.approx([0.4])
    assert gate.reserve(s, Limits(), 3, now=0.0, ahead_s=0.5)[0] == [0.0, 0.0, 0.0]


@settings(max_examples=200, deadline=None)
@given(
    rate=st.integers(min_value=1, max_value=500),
    burst=st.integers(min_value=1, max_value=50),
    asks=st.lists(
        st.tuples(st.floats(min_value=0.0, max_value=0.2), st.integers(1, 64)),
        min_size=1,
        max_size=300,
    ),
)
def test_reserved_moments_never_let_a_window_exceed_rate_plus_burst(
    rate: int, burst: int, asks: list[tuple[float, int]]
) -> None:
    limits = Limits(rate=Rate(float(rate), 1.0), burst=burst)
    s, now, moments = gate.fresh(CONFIG), 0.0, []
    for step, units in asks:
        now += step
        offsets, s = gate.reserve(s, limits, units, now, ahead_s=0.5)
        assert all(0.0 <= o <= 0.5 + 1e-9 for o in offsets)
        moments += [now + o for o in offsets]
    moments.sort()
    for i, start_at in enumerate(moments):
        in_window = sum(1 for t in moments[i:] if t < start_at + 1.0 - 1e-9)
        assert in_window <= rate + burst


@settings(max_examples=200, deadline=None)
@given(
    rate=st.integers(min_value=1, max_value=500),
    burst=st.integers(min_value=1, max_value=50),
    asks=st.lists(
        st.tuples(st.floats(min_value=0.0, max_value=0.2), st.integers(1, 64)),
        min_size=1,
        max_size=300,
    ),
)
def test_gcra_never_lets_a_window_exceed_rate_plus_burst(
    rate: int, burst: int, asks: list[tuple[float, int]]
) -> None:
    limits = Limits(rate=Rate(float(rate), 1.0), burst=burst)
    s, now, grants = gate.fresh(CONFIG), 0.0, []
    for step, units in asks:
        now += step
        granted, s = gate.take(s, limits, units, now)
        grants.append((now, granted))
    for start_at, _ in grants:
        in_window = sum(g for t, g in grants if start_at <= t < start_at + 1.0)
        assert in_window <= rate + burst
