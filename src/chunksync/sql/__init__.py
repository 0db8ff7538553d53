"""Named SQL queries and migrations, loaded from the package's .sql files.

Each dialect keeps `queries.sql` (blocks headed `-- name --` then a one-line description),
`schema.sql` (the truth for a new database) and `migrations/NNNN_name.sql` (forward only).
A feature with tables of its own (the message store) adds `queries_<feature>.sql` and
`schema_<feature>.sql` beside them; they are read after the main files, in name order.

A schema file never holds a hand copy of a migration. Where a new database needs a migration's
objects exactly as the migration writes them (PostgreSQL's SQL health interface: functions, no
tables), the schema file names it on a line of its own, `-- include migrations/NNNN_name.sql --`,
and `schema()` reads the migration there: one copy, and the migration test still compares the
database that schema.sql builds with the one the migrations build.

A part that several queries share word for word (a queue's chunk totals) is written once, in
the dialect's `fragments.sql` (blocks as in `queries.sql`), and a query names it on a line of
its own, `-- include <fragment> --`, where its text goes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

_HEADER = re.compile(r"^-- (\w+) --$", re.MULTILINE)
_INCLUDE = re.compile(r"^-- include (migrations/\d{4}_\w+\.sql) --$", re.MULTILINE)
_FRAGMENT = re.compile(r"^[ \t]*-- include (\w+) --$", re.MULTILINE)
# A query's named parameter, `:name`: not PostgreSQL's `::type` cast, nor a colon within a word.
NAMED_PARAM = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")
# schema.sql's objects that are not any migration's (the schema_version table) come before it.
MIGRATIONS_START = "-- 0001_initial --"

# The one macro: the database clock in seconds since the epoch, per dialect. On PostgreSQL it
# is the statement's start: like SQLite's 'now', one value within a statement and fresh for the
# next (a long transaction does not age its leases), and stable, unlike clock_timestamp(), so
# the planner can use `run_after <= NOW()` in an index scan. date_part gives float8 directly.
NOW_EXPRESSIONS = {
    "sqlite": "((julianday('now') - 2440587.5) * 86400.0)",
    "postgres": "date_part('epoch', statement_timestamp())",
}


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


def _read(dialect: str, name: str) -> str:
    return resources.files("chunksync.sql").joinpath(dialect, name).read_text(encoding="utf-8")


def _files(dialect: str, stem: str) -> list[str]:
    """`stem.sql` then every `stem_<feature>.sql`, in name order."""
    folder = resources.files("chunksync.sql").joinpath(dialect)
    extra = sorted(e.name for e in folder.iterdir() if re.fullmatch(rf"{stem}_\w+\.sql", e.name))
    return [f"{stem}.sql", *extra]


def _read_all(dialect: str, stem: str) -> str:
    return "\n\n".join(_read(dialect, name) for name in _files(dialect, stem))


def _include(dialect: str, text: str) -> str:
    """Each `-- include migrations/NNNN_name.sql --` line replaced by that migration's text."""
    return _INCLUDE.sub(lambda m: _read(dialect, m.group(1)).strip(), text)


def expand(dialect: str, sql: str) -> str:
    return sql.replace("NOW()", NOW_EXPRESSIONS[dialect])


def _blocks(text: str, where: str, shared: dict[str, str]) -> dict[str, str]:
    """{name: sql} of a file's `-- name --` blocks, each fragment it includes put in place."""
    found: dict[str, str] = {}
    parts = _HEADER.split(text)
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        try:
            body = _FRAGMENT.sub(lambda m: shared[m.group(1)], body)
        except KeyError as missing:
            raise ValueError(f"'{name}' includes {missing}, not in {where}") from None
        # The first line is the description. A comment line within a statement explains it to
        # its reader, not to the database, and so does a line's indentation: sent, they made
        # the claim longer than psycopg's cache of converted queries takes (4,096 bytes), so
        # each claim was parsed again (no statement has a string literal over two lines).
        lines = [
            line.lstrip()
            for line in body.strip().splitlines()[1:]
            if not line.lstrip().startswith("--")
        ]
        while lines and not lines[-1].strip():
            lines.pop()
        if name in found:
            raise ValueError(f"'{name}' is defined twice in {where}")
        found[name] = "\n".join(lines).strip().rstrip(";")
    return found


@cache
def fragments(dialect: str) -> dict[str, str]:
    """{name: sql} of the parts several queries share (`fragments.sql`), unexpanded."""
    return _blocks(_read(dialect, "fragments.sql"), f"{dialect}/fragments.sql", {})


@cache
def queries(dialect: str) -> dict[str, str]:
    """{name: sql} for one dialect. Each file is split on its own, so that one file's header
    comment never joins the last query of the file before it."""
    found: dict[str, str] = {}
    shared = fragments(dialect)
    for filename in _files(dialect, "queries"):
        for name, sql in _blocks(_read(dialect, filename), filename, shared).items():
            if name in found:
                raise ValueError(f"query '{name}' is defined twice for {dialect}")
            found[name] = expand(dialect, sql)
    return found


@cache
def schema(dialect: str) -> str:
    """The whole schema of a new database: schema.sql, then each schema_<feature>.sql."""
    return expand(dialect, _include(dialect, _read_all(dialect, "schema")))


def version_table(dialect: str) -> str:
    """The part of schema.sql that no migration creates (the schema_version table): what a
    database built from the migrations alone starts with."""
    return expand(dialect, _read(dialect, "schema.sql").split(MIGRATIONS_START)[0])


@cache
def migrations(dialect: str) -> tuple[Migration, ...]:
    folder = resources.files("chunksync.sql").joinpath(dialect, "migrations")
    found = []
    for entry in folder.iterdir():
        match = re.fullmatch(r"(\d{4})_(\w+)\.sql", entry.name)
        if match:
            sql = expand(dialect, entry.read_text(encoding="utf-8"))
            found.append(Migration(int(match.group(1)), match.group(2), sql))
    return tuple(sorted(found, key=lambda m: m.version))


def latest_version(dialect: str) -> int:
    found = migrations(dialect)
    return found[-1].version if found else 0
