"""`worker --until-done` through the real CLI: a progress bar on a terminal, a summary always."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.fixtures.apps import make_app


def until_done(url: str, tmp_path: Path, *, terminal: bool) -> str:
    env = {**os.environ, "CHUNKSYNC_TEST_EFFECTS": str(tmp_path / "effects")}
    env.pop("TTY_COMPATIBLE", None)
    if terminal:  # Rich draws for a terminal when told the output is one
        env.update({"TTY_COMPATIBLE": "1", "COLUMNS": "100"})
    cmd = [sys.executable, "-m", "chunksync", "--db", url, "--app", "tests.fixtures.apps:make_app"]
    proc = subprocess.run(
        [*cmd, "worker", "--until-done", "--poll", "0.05"],
        capture_output=True, text=True, timeout=120, env=env, check=False,
    )  # fmt: skip
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    return proc.stdout


def test_until_done_draws_a_bar_on_a_terminal_and_prints_a_summary(
    sqlite_url: str, tmp_path: Path
) -> None:
    with make_app(sqlite_url) as app:
        app.create_queue("sleepy://a", [{"n": n} for n in range(12)])
    out = until_done(sqlite_url, tmp_path, terminal=True)
    assert "12/12" in out and "100%" in out and "━" in out
    assert "done in" in out and "1 queue(s), 12 completed" in out


def test_until_done_prints_only_the_summary_when_not_a_terminal(
    sqlite_url: str, tmp_path: Path
) -> None:
    with make_app(sqlite_url) as app:
        app.create_queue("sleepy://b", [{"n": n} for n in range(5)])
    out = until_done(sqlite_url, tmp_path, terminal=False)
    assert "━" not in out and "5 completed" in out
    assert "this worker ran 5 attempt(s)" in out
