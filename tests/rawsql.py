"""SQL past chunksync, on either backend: a test's way to write what the code never would (a
damaged row, a newer schema's table, the previous release's single-row INSERT) and to read what
it wrote without chunksync's own queries."""

from __future__ import annotations

import sqlite3
from typing import Any

from chunksync.backends.sqlite import path_from_url


def connect(url: str) -> Any:
    """An autocommit PostgreSQL connection that sees every tenant's rows (row security)."""
    import psycopg

    conn = psycopg.connect(url, autocommit=True)
    conn.execute("SELECT set_config('chunksync.tenant', '*', false)")
    return conn


def run(url: str, statement: str, *params: Any) -> list[tuple[Any, ...]]:
    """One statement (`%s` for each parameter), committed; its rows, if it returns any."""
    if url.startswith("sqlite"):
        conn = sqlite3.connect(path_from_url(url))
        conn.execute("PRAGMA foreign_keys = ON")
        try:
            with conn:
                return conn.execute(statement.replace("%s", "?"), params).fetchall()
        finally:
            conn.close()
    with connect(url) as pg:
        cursor = pg.execute(statement.encode(), params or None)
        return cursor.fetchall() if cursor.description else []
