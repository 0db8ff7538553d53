"""Forecasts, Erlang C, advice verdicts, burn rates and change points on plain numbers."""

from __future__ import annotations

import math
import random

import pytest

from chunksync.observe import degradation, forecast, slo


def test_holt_follows_a_trend() -> None:
    holt = forecast.Holt()
    for minute in range(120):
        holt.update(1.0 + 0.01 * minute)
    assert holt.forecast(0) == pytest.approx(2.19, rel=0.05)
    assert holt.forecast(30) == pytest.approx(2.49, rel=0.05)
    assert forecast.Holt().forecast(5) is None


@pytest.mark.parametrize(
    ("level", "trend"), [(0.0, 0.0), (2.0, 0.1), (2.0, -0.01), (2.0, -0.1), (0.5, -1.0), (0.0, 3.0)]
)
def test_the_mean_forecast_is_the_mean_of_the_values_ahead(level: float, trend: float) -> None:
    """Its closed form where no value is cut at zero, the sum where some are."""
    holt = forecast.Holt(level=level, trend=trend)
    for steps in (1, 15, 30, 60):
        values = [holt.forecast(k) or 0.0 for k in range(1, steps + 1)]
        assert holt.mean_forecast(steps) == pytest.approx(sum(values) / steps, abs=1e-12)


def test_erlang_c_matches_known_values() -> None:
    # 2 servers offered 1 Erlang: P(wait) = 1/3.
    assert forecast.erlang_c(2, 1.0) == pytest.approx(1 / 3)
    assert forecast.erlang_c(1, 2.0) == 1.0 and forecast.erlang_c(3, 0.0) == 0.0
    assert forecast.wait_quantile(1, 2.0, 1.0, 0.95) == math.inf


def test_slots_meet_the_objective_and_never_go_below_littles_law() -> None:
    c = forecast.slots_for_wait(10.0, 0.5, 1.0)
    assert forecast.wait_quantile(c, 10.0, 0.5, 0.95) <= 1.0
    assert forecast.wait_quantile(c - 1, 10.0, 0.5, 0.95) > 1.0
    assert c >= forecast.littles_law_slots(10.0, 0.5)


def steady(rate: float) -> forecast.Holt:
    holt = forecast.Holt()
    for _ in range(60):
        holt.update(rate)
    return holt


def test_advice_verdicts() -> None:
    args = {"service_s": 1.0, "backlog": 0, "wait_objective_s": 5.0}
    need = forecast.advise("q", arrival=steady(4.0), current_slots=2, **args)  # type: ignore[arg-type]
    assert need.verdict == "add" and need.recommended_slots >= 5
    spare = forecast.advise("q", arrival=steady(4.0), current_slots=50, **args)  # type: ignore[arg-type]
    assert spare.verdict == "remove"
    capped = forecast.advise(
        "q",
        arrival=steady(4.0),
        current_slots=3,
        limits=forecast.Limits(dependency="api", connections=3),
        **args,  # type: ignore[arg-type]
    )
    assert capped.verdict == "do_not_add" and "dependency api" in capped.reason
    unknown = forecast.advise("q", arrival=steady(4.0), current_slots=3, service_s=None,
                              backlog=0, wait_objective_s=5.0)  # fmt: skip
    assert unknown.verdict == "ok" and unknown.recommended_slots == 3


def test_burn_alerts_need_both_windows() -> None:
    objective = slo.Objective("wait", 30.0)
    burning = slo.burn_alerts("q", objective, lambda w: (0, 100))
    assert [a.window for a in burning] == ["fast", "slow"]
    recovered = slo.burn_alerts("q", objective, lambda w: (100, 0) if w < 3600 else (0, 100))
    assert recovered == []
    assert slo.budget_left(95, 5, objective) == pytest.approx(0.0)
    assert slo.burn_rate(0, 0, objective) is None


def test_page_hinkley_finds_a_doubling_and_ignores_noise() -> None:
    rng = random.Random(1)
    ph = degradation.PageHinkley("q")
    found = None
    for minute in range(300):
        scale = 2.0 if minute >= 200 else 1.0
        mean = sum(rng.expovariate(1 / scale) for _ in range(200)) / 200
        evidence = ph.update(mean, 200)
        if evidence is not None:
            found = (minute, evidence)
            break
    assert found is not None and 200 <= found[0] <= 204
    assert found[1].after / found[1].before == pytest.approx(2.0, rel=0.3)


def test_new_error_pattern() -> None:
    found = degradation.new_error_patterns("q", {"auth": 1}, 1000, {"auth": 40}, 200)
    assert [e.rule for e in found] == ["new_error_pattern"] and found[0].after == 0.2
    assert degradation.new_error_patterns("q", {"auth": 100}, 1000, {"auth": 30}, 200) == []
