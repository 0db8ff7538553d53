"""What a migration will do to a running fleet: the lock each statement takes, and whether the
fleet goes on meanwhile (online) or waits (offline), read from the statement itself.

A rolling upgrade works in two phases. *Expand*: add tables, columns and indexes the new code
needs while the old code still works (a migration file says so with a line `-- expand --`);
then roll the workers over one at a time. *Contract*: once no old worker is left, drop what
only the old code used. An unmarked migration counts as a contract: code older than it refuses
the database. `chunksync migrate --plan` prints this module's reading of each pending step.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

EXPAND_MARK = re.compile(r"^-- expand --$", re.MULTILINE)
# A backfill over a big table, in a migration that runs outside a transaction: the statement
# after this line changes at most one batch (its LIMIT) of the rows not yet done, and the runner
# runs it again, each run committing on its own, until it changes none.
BATCH_MARK = re.compile(r"^-- in batches --$", re.MULTILINE)
_NAME = r"(?:IF (?:NOT )?EXISTS\s+)?\"?(\w+)\"?"
_ONLINE_PARAMETER = (
    r"(?:fillfactor|toast_tuple_target|(?:toast\.)?autovacuum_\w+|(?:toast\.)?vacuum_\w+"
    r"|parallel_workers)"
    r"(?:\s*=\s*[\w.']+)?"
)
_ONLINE_INDEX_PARAMETER = r"(?:fillfactor|deduplicate_items)(?:\s*=\s*[\w.']+)?"


@dataclass(frozen=True, slots=True)
class Effect:
    """One statement's lock and whether work goes on while it runs."""

    statement: str  # its first line
    lock: str
    online: bool


# (pattern, PostgreSQL's lock and online, SQLite's lock and online); the first match wins.
_RULES: tuple[tuple[re.Pattern[str], tuple[str, bool], tuple[str, bool]], ...] = tuple(
    (re.compile(p, re.IGNORECASE | re.DOTALL), pg, lite)
    for p, pg, lite in (
        (
            rf"^CREATE\s+(?:UNIQUE\s+)?INDEX\s+CONCURRENTLY\s+{_NAME}\s+ON\s+(\w+)",
            ("SHARE UPDATE EXCLUSIVE on {1}: reads and writes go on", True),
            ("the write lock while the index is built: writers wait", False),
        ),
        (
            rf"^CREATE\s+(?:UNIQUE\s+)?INDEX\s+{_NAME}\s+ON\s+(\w+)",
            ("SHARE on {1} while the index is built: writes to it wait", False),
            ("the write lock while the index is built: writers wait", False),
        ),
        (
            rf"^CREATE\s+TABLE\s+{_NAME}",
            ("none on existing tables", True),
            ("the write lock for a moment", True),
        ),
        (
            rf"^ALTER\s+TABLE\s+{_NAME}\s+(?:ENABLE|FORCE|DISABLE|NO\s+FORCE)\s+ROW\s+LEVEL"
            r"\s+SECURITY$",
            ("ACCESS EXCLUSIVE on {0} for a moment (catalog only)", True),
            ("the write lock for a moment (catalog only)", True),
        ),
        (
            rf"^ALTER\s+TABLE\s+{_NAME}\s+ALTER\s+(?:COLUMN\s+)?\w+\s+(?:SET|DROP)\s+DEFAULT\b",
            ("ACCESS EXCLUSIVE on {0} for a moment (catalog only)", True),
            ("the write lock for a moment (catalog only)", True),
        ),
        (
            rf"^(?:CREATE|ALTER|DROP)\s+POLICY\s+{_NAME}\s+ON\s+(\w+)",
            ("ACCESS EXCLUSIVE on {1} for a moment (catalog only)", True),
            ("the write lock for a moment (catalog only)", True),
        ),
        (
            rf"^ALTER\s+TABLE\s+{_NAME}\s+ADD\s+(?:COLUMN\s+)?\w+\s+[\w ()]*?"
            r"(?:DEFAULT\s+[^,;()]+)?$",
            ("ACCESS EXCLUSIVE on {0} for a moment (catalog only)", True),
            ("the write lock for a moment (catalog only)", True),
        ),
        (
            # The storage parameters PostgreSQL changes under SHARE UPDATE EXCLUSIVE (its ALTER
            # TABLE page; any other parameter in the list takes ACCESS EXCLUSIVE).
            rf"^ALTER\s+TABLE\s+{_NAME}\s+(?:SET|RESET)\s*\(\s*{_ONLINE_PARAMETER}"
            rf"(?:\s*,\s*{_ONLINE_PARAMETER})*\s*\)$",
            (
                "SHARE UPDATE EXCLUSIVE on {0}: reads and writes go on (a fillfactor applies"
                " to the pages written from then on)",
                True,
            ),
            ("the write lock while the table is rewritten: writers wait", False),
        ),
        (
            # A B-tree's parameters: SHARE UPDATE EXCLUSIVE on the index alone. (SQLite has no
            # ALTER INDEX.)
            rf"^ALTER\s+INDEX\s+{_NAME}\s+(?:SET|RESET)\s*\(\s*{_ONLINE_INDEX_PARAMETER}"
            rf"(?:\s*,\s*{_ONLINE_INDEX_PARAMETER})*\s*\)$",
            (
                "SHARE UPDATE EXCLUSIVE on {0}: reads and writes go on (a fillfactor applies"
                " to the pages split from then on)",
                True,
            ),
            ("none: SQLite has no ALTER INDEX (the statement fails)", False),
        ),
        (
            rf"^ALTER\s+TABLE\s+{_NAME}",
            ("ACCESS EXCLUSIVE on {0} while it is scanned or rewritten: everything waits", False),
            ("the write lock while the table is rewritten: writers wait", False),
        ),
        (
            rf"^DROP\s+INDEX\s+CONCURRENTLY\s+{_NAME}",
            ("SHARE UPDATE EXCLUSIVE on its table: reads and writes go on", True),
            ("the write lock for a moment", True),
        ),
        (
            rf"^DROP\s+(?:TABLE|INDEX|VIEW|FUNCTION|TRIGGER)\s+{_NAME}",
            ("ACCESS EXCLUSIVE on {0} for a moment", True),
            ("the write lock for a moment", True),
        ),
        (
            r"^CREATE\s+(?:OR\s+REPLACE\s+)?(?:FUNCTION|VIEW|TRIGGER)\b",
            ("none on table rows (a trigger: SHARE ROW EXCLUSIVE for a moment)", True),
            ("the write lock for a moment", True),
        ),
        (
            rf"^(?:UPDATE|DELETE\s+FROM|INSERT\s+INTO)\s+{_NAME}",
            ("ROW EXCLUSIVE on {0}, row locks until commit: online only in small batches", False),
            ("the write lock until commit: writers wait", False),
        ),
    )
)


_BATCH = re.compile(
    rf"^(?:UPDATE|DELETE\s+FROM|INSERT\s+INTO)\s+{_NAME}.*\bLIMIT\b", re.IGNORECASE | re.DOTALL
)


def effect(dialect: str, statement: str) -> Effect:
    """The lock one statement takes on this dialect, and whether the fleet goes on meanwhile.
    A statement no rule knows is reported offline, to be read before it runs."""
    text = _code(statement)
    first = text.splitlines()[0] if text else ""
    batch = _BATCH.match(text) if in_batches(statement) and dialect == "postgres" else None
    if batch:
        lock = f"ROW EXCLUSIVE on {batch.group(1)}, one batch's row locks at a time, each batch"
        return Effect(first, lock + " committing on its own", True)
    for pattern, pg, lite in _RULES:
        match = pattern.match(text)
        if match:
            lock, online = pg if dialect == "postgres" else lite
            return Effect(first, lock.format(*match.groups()), online)
    return Effect(first, "unknown: read the statement before running it", False)


def is_expand(migration_sql: str) -> bool:
    return bool(EXPAND_MARK.search(migration_sql))


def in_batches(sql: str) -> bool:
    return bool(BATCH_MARK.search(sql))


def _code(statement: str) -> str:
    """The statement without its comments (a `--` in a string literal is rare enough in a
    migration to be read as one), stripped of its semicolon."""
    lines = [ln.split("--")[0].rstrip() for ln in statement.splitlines()]
    return "\n".join(ln for ln in lines if ln.strip()).strip().rstrip(";").strip()
