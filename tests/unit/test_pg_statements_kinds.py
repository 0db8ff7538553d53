"""benchmarks/pg_statements.py files each statement of a drain under the worker's claim, finish
or attempt rows by how its text starts. A named query rewritten to start otherwise would be
counted as "other" without a word, and one of another kind starting alike would be counted as
the worker's: each start belongs to its own named queries alone."""

from __future__ import annotations

from benchmarks.pg_statements import KINDS, NAMED, kind

from chunksync import sql


def test_each_statement_of_a_batch_is_filed_under_its_own_kind() -> None:
    queries = sql.queries("postgres")
    for name, named in NAMED.items():
        for query in named:
            assert kind(queries[query]) == name, query
    assert {name for name, _ in KINDS} == NAMED.keys()


def test_no_other_named_query_is_taken_for_the_workers() -> None:
    queries = sql.queries("postgres")
    ours = {query for named in NAMED.values() for query in named}
    taken = {query for query, text in queries.items() if kind(text) != "other"}
    assert taken == ours
