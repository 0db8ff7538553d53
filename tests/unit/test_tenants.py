"""A tenant's policy as data: defaults, changes, and the checks of what an operator typed."""

from __future__ import annotations

import pytest

from chunksync.exceptions import ConfigurationError
from chunksync.tenants import DEFAULT_WEIGHT, TenantPolicy, changed


def test_an_undeclared_tenant_has_the_defaults() -> None:
    policy = TenantPolicy.from_row("nobody", None)
    assert policy == TenantPolicy("nobody", DEFAULT_WEIGHT, None, None, False)


def test_a_change_keeps_what_was_not_given_and_removes_a_quota_given_as_none() -> None:
    before = TenantPolicy("acme", 2.0, 5, 100, True)
    assert changed(before, weight=3) == TenantPolicy("acme", 3.0, 5, 100, True)
    assert changed(before, max_in_flight=None) == TenantPolicy("acme", 2.0, None, 100, True)
    assert changed(before, max_queued=0).max_queued == 0


@pytest.mark.parametrize(
    ("weight", "in_flight", "queued", "words"),
    [(0.0, None, None, "above 0"), (-1.0, None, None, "above 0"), (None, -1, None, "0 or more")],
)
def test_nonsense_is_refused_in_one_sentence(
    weight: float | None, in_flight: int | None, queued: int | None, words: str
) -> None:
    with pytest.raises(ConfigurationError, match=words):
        changed(TenantPolicy("acme"), weight=weight, max_in_flight=in_flight, max_queued=queued)
