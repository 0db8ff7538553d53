"""Top N tenants plus "other": bounded labels whose sums stay the totals."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chunksync.exceptions import ConfigurationError
from chunksync.observe import metrics
from chunksync.observe.tenant_health import OTHER, TenantFigures, top_tenants, totals


def fig(
    pending: int, done: int = 0, age: float | None = None, quota: int | None = None
) -> TenantFigures:
    return TenantFigures(Counter(pending=pending, completed=done), age, quota)


def test_the_largest_backlogs_by_name_and_the_rest_as_other() -> None:
    figures = {"a": fig(5, age=10.0, quota=2), "b": fig(9), "c": fig(5, 3, age=40.0), "d": fig(1)}
    shown = top_tenants(figures, 2)
    assert list(shown) == ["b", "a", OTHER]
    other = shown[OTHER]
    assert other.chunks == Counter(pending=6, completed=3)
    assert (other.oldest_pending_age_s, other.in_flight_quota) == (40.0, None)
    assert shown["a"].in_flight_quota == 2


def test_no_other_when_every_tenant_is_named_and_a_tenant_called_other_is_folded() -> None:
    assert list(top_tenants({"a": fig(1), "b": fig(2)}, 5)) == ["b", "a"]
    shown = top_tenants({"other": fig(50), "a": fig(1)}, 5)
    assert list(shown) == ["a", OTHER] and shown[OTHER].backlog == 50
    assert list(top_tenants({"a": fig(1)}, 0)) == [OTHER]


@given(
    st.dictionaries(
        st.text(min_size=1, max_size=5), st.tuples(st.integers(0, 99), st.integers(0, 99))
    ),
    st.integers(0, 30),
)
def test_labels_are_bounded_and_sums_are_the_totals(
    raw: dict[str, tuple[int, int]], n: int
) -> None:
    figures = {t: fig(p, d) for t, (p, d) in raw.items()}
    shown = top_tenants(figures, n)
    assert len(shown) <= n + 1
    assert totals(shown.values()) == totals(figures.values())


def test_the_number_of_named_tenants_comes_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(metrics.TOP_TENANTS_ENV, raising=False)
    assert metrics.top_tenants_setting() == 20
    monkeypatch.setenv(metrics.TOP_TENANTS_ENV, "5")
    assert metrics.top_tenants_setting() == 5
    monkeypatch.setenv(metrics.TOP_TENANTS_ENV, "many")
    with pytest.raises(ConfigurationError, match="whole number"):
        metrics.top_tenants_setting()
