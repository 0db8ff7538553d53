"""Power loss, 300 times in a short run (tests/chaos/power.py; `make chaos` does 2,000): SQLite
workers forked and SIGKILLed at random moments, `chunksync check` finding no damage after every
tenth kill and at the end, and then every chunk completed or dead for the reason a kill storm
gives (a crash loop: three workers in a row died holding it), none lost."""

from __future__ import annotations

from pathlib import Path

import pytest

from chunksync.retry import CRASH_LOOP_LIMIT
from tests.chaos.power import kill_loop

KILLS = 300
CHUNKS = 20_000


@pytest.mark.timeout(600)
def test_hundreds_of_kills_in_the_write_path_leave_no_damage(tmp_path: Path) -> None:
    found = kill_loop(f"sqlite:///{tmp_path / 'power.db'}", KILLS, CHUNKS)
    report = "\n".join([found.figures(), *found.violations[:10]])
    assert found.kills == KILLS and found.checks == KILLS // 10, report
    assert found.violations == [], report
    assert sum(found.by_status.values()) == CHUNKS, report  # none lost
    assert set(found.by_status) <= {"completed", "dead"}, report
    assert set(found.dead_reasons) <= {"crash_loop"}, report
    assert found.done_before_drain > 0, report  # the killed workers did work between kills
    assert CRASH_LOOP_LIMIT == 3  # what "three workers in a row" above says
