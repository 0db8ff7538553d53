"""The engine's own batches (a finish's results, the attempts' metrics) are written by orjson
and must read back as `strict_json`'s text of the same rows does; a non-finite float is refused
as `strict_json` refuses it (orjson alone would write null)."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chunksync.backends.base import finite, rows_json, strict_json
from chunksync.models import ChunkStatus, ErrorCategory, Outcome

TEXT = st.text(st.characters(blacklist_categories=["Cs"]))  # a lone surrogate is no UTF-8
VALUES = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | TEXT
    | st.sampled_from([*ChunkStatus, *Outcome, *ErrorCategory])
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(VALUES, max_size=16), max_size=8))
def test_a_batch_reads_back_as_strict_json_writes_it(rows: list[list[Any]]) -> None:
    assert json.loads(rows_json(rows)) == json.loads(strict_json(rows))


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_a_float_no_json_holds_is_refused_as_strict_json_refuses_it(value: float) -> None:
    with pytest.raises(ValueError, match="Out of range float values are not JSON compliant"):
        strict_json([value])
    with pytest.raises(ValueError, match="Out of range float values are not JSON compliant"):
        finite(value)
    assert finite(1.5) == 1.5 and finite(None) is None
