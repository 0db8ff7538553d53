"""The rollups' latency histogram: bins and percentiles within the bins' width of exact."""

from __future__ import annotations

import random

import pytest

from chunksync.observe import rollups


def exact(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def test_bins_are_logarithmic_from_a_millisecond() -> None:
    assert rollups.latency_bin(0.0) == rollups.latency_bin(0.001) == 0
    assert rollups.latency_bin(0.00101) == 1
    for seconds in (0.002, 0.05, 1.0, 37.0, 3600.0):
        b = rollups.latency_bin(seconds)
        assert rollups.bin_value(b, 0.0) < seconds <= rollups.bin_value(b, 1.0) * (1 + 1e-9)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("fraction", [0.5, 0.95, 0.99])
def test_percentile_from_bins_is_within_a_bin(seed: int, fraction: float) -> None:
    rng = random.Random(seed)
    values = [rng.lognormvariate(-1.0, 1.2) for _ in range(5000)]
    counts: dict[int, int] = {}
    for v in values:
        counts[rollups.latency_bin(v)] = counts.get(rollups.latency_bin(v), 0) + 1
    got = rollups.percentile_from_bins(counts.items(), fraction)
    assert got == pytest.approx(exact(values, fraction), rel=rollups.LATENCY_RATIO - 1)


def test_an_empty_histogram_has_no_percentile() -> None:
    assert rollups.percentile_from_bins([], 0.95) is None
    assert rollups.percentile_from_bins([(3, 0)], 0.95) is None
