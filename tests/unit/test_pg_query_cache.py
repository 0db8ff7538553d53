"""psycopg converts a query's %(name)s placeholders once and caches the result, but only for a
query of at most MAX_CACHED_STATEMENT_LENGTH bytes: a longer claim was converted again at every
call (which is why chunksync.sql leaves comment lines out of what it sends). The worker's hot
statements stay under it."""

from __future__ import annotations

from psycopg._queries import MAX_CACHED_STATEMENT_LENGTH

from chunksync import sql
from chunksync.backends.postgres import to_psycopg


def test_the_hot_statements_fit_psycopgs_cache_of_converted_queries() -> None:
    queries = sql.queries("postgres")
    for name in ("claim_chunks", "claim_chunks_of", "finish_chunks", "insert_attempts"):
        assert len(to_psycopg(queries[name])) <= MAX_CACHED_STATEMENT_LENGTH, name
