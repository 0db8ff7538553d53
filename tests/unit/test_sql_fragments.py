"""Fragments (chunksync.sql): a part several queries share is written once and put in place of
each `-- include <name> --` line; a query that names a fragment that does not exist fails
loading with a sentence naming both."""

from __future__ import annotations

import pytest

from chunksync import sql

TOTALS_READERS = ("get_queue", "list_queues", "list_queues_page", "list_queues_tenant")


@pytest.mark.parametrize("dialect", ["sqlite", "postgres"])
def test_each_queue_totals_reader_carries_the_one_fragment(dialect: str) -> None:
    fragment = sql.expand(dialect, sql.fragments(dialect)["queue_totals"])
    queries = sql.queries(dialect)
    assert "n_cancelled" in fragment and "-- include" not in fragment
    for name in TOTALS_READERS:
        assert fragment in queries[name], name
    assert not [name for name, text in queries.items() if "-- include" in text]


def test_an_unknown_fragment_is_named() -> None:
    text = "-- one --\n-- A query.\nSELECT 1\n-- include nowhere --\n;\n"
    with pytest.raises(ValueError, match=r"'one' includes 'nowhere', not in f\.sql"):
        sql._blocks(text, "f.sql", {})


def test_an_include_line_keeps_the_lines_around_it() -> None:
    text = "-- one --\n-- A query.\nSELECT a,\n    -- include cols --\nFROM t\n"
    assert sql._blocks(text, "f.sql", {"cols": "b, c"}) == {"one": "SELECT a,\nb, c\nFROM t"}
