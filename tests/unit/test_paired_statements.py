"""benchmarks/paired_statements.py reads each side's statements from that side's own files: a
change to how the package reads its SQL must not leave both sides silently measuring the same
tree (the package's own) and printing ratios of 1."""

from __future__ import annotations

import shutil
from pathlib import Path

from benchmarks.paired_statements import HERE, tree_queries

from chunksync import sql


def test_each_side_reads_its_own_tree(tmp_path: Path) -> None:
    folder = tmp_path / "src" / "chunksync" / "sql"
    shutil.copytree(HERE / "src" / "chunksync" / "sql", folder)
    queries = folder / "postgres" / "queries.sql"
    text = queries.read_text(encoding="utf-8")
    marked = text.replace(
        "UPDATE chunks c\nSET status = 'processing'",
        "UPDATE chunks c\nSET status = 'processing' /* other tree */",
        1,
    )
    assert marked != text
    queries.write_text(marked, encoding="utf-8")

    other = tree_queries(tmp_path)
    ours = tree_queries(HERE)

    assert b"/* other tree */" in other["claim_chunks"]
    assert b"/* other tree */" not in ours["claim_chunks"]
    assert other["finish_chunks"] == ours["finish_chunks"]
    # The package's own queries are its own again afterwards.
    assert "/* other tree */" not in sql.queries("postgres")["claim_chunks"]
