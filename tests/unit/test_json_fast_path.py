"""A column's JSON text loads exactly as json.loads loads it, or fails as json.loads fails.

`models._json` calls json's C scanner directly (a claimed chunk's payload and checkpoint are
read through it) and leaves to json.loads any text the scanner does not consume whole. Each
case is loaded both ways: JSON that PostgreSQL and `strict_json` write, whitespace around it,
trailing text, and arbitrary strings.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chunksync.models import _json

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


def _same(text: str) -> None:
    try:
        expected: Any = json.loads(text)
    except ValueError as exc:
        with pytest.raises(type(exc)) as raised:
            _json(text)
        assert str(raised.value) == str(exc)
        return
    found = _json(text)
    if isinstance(expected, float) and math.isnan(expected):
        assert isinstance(found, float) and math.isnan(found)
    else:
        assert found == expected and type(found) is type(expected)


@settings(max_examples=300, deadline=None)
@given(JSON_VALUES, st.sampled_from([None, (",", ":")]), st.sampled_from(["", " ", "\n", "x"]))
def test_json_text_loads_as_json_loads_loads_it(value: Any, separators: Any, around: str) -> None:
    text = json.dumps(value, separators=separators, ensure_ascii=False)
    _same(text)
    _same(around + text)
    _same(text + around)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=20))
def test_any_text_loads_or_fails_as_json_loads_does(text: str) -> None:
    _same(text)


@pytest.mark.parametrize("text", ["NaN", "-Infinity", "", "{", '{"a": 1}}', "[1,]", "1 2"])
def test_the_edges_json_loads_allows_or_refuses(text: str) -> None:
    _same(text)
