"""The worker's own record of its heartbeats: stalled (alive, the database away) or not."""

from __future__ import annotations

from chunksync.runtime.recovery import StallClock


def test_failed_heartbeats_longer_than_the_lease_are_a_stall() -> None:
    clock = StallClock(lease_s=1.0, last_ok=0.0)
    for _ in range(5):
        clock.failed()
    assert clock.answered(started=6.0, now=6.1) == 6.1
    assert clock.answered(started=6.4, now=6.5) is None  # the next one is ordinary again


def test_a_heartbeat_that_waited_on_the_database_is_a_stall() -> None:
    clock = StallClock(lease_s=1.0, last_ok=0.0)
    assert clock.answered(started=0.3, now=4.0) == 4.0


def test_a_heartbeat_that_did_not_run_is_no_stall() -> None:
    """A handler holding the interpreter starves the heartbeat thread: its leases lapsed for
    the worker's own sake, and recovery's charge stands."""
    clock = StallClock(lease_s=1.0, last_ok=0.0)
    assert clock.answered(started=5.0, now=5.01) is None


def test_a_short_outage_within_the_lease_is_no_stall() -> None:
    clock = StallClock(lease_s=10.0, last_ok=0.0)
    clock.failed()
    assert clock.answered(started=3.0, now=3.1) is None
