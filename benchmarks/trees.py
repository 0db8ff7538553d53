"""The source trees that the paired benchmarks (paired_drains, paired_sync) measure in turns."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def compiled(tree: Path) -> Path:
    """`tree` resolved, its package byte-compiled as `make bench` and an installed package have
    it. A worktree made for a paired run has no .pyc files, and where PYTHONDONTWRITEBYTECODE is
    set (this machine's environment) each of its turns compiled chunksync afresh: a 10,000-message
    sync read 1.97 -> 1.71 s, quicker in 12 pairs of 12, for a change that, compiled both sides,
    measured nothing (1.58 -> 1.57 s, 9 of 20)."""
    tree = tree.resolve()
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(tree / "src")], check=True)
    return tree
