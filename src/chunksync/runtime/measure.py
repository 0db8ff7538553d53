"""What step 5 reads besides the clock: this process's memory and each queue's recent pace.

`rss_bytes()` samples the process's resident memory at most every RSS_SAMPLE_SECONDS (reading
/proc for every quick chunk would cost more than the chunk); its cache is per process, so it is
a module global. `Efficiency` keeps, per worker, a window of each queue's recent items/s, whose
median makes an attempt's efficiency (chunksync.runtime.attempt.measured).
"""

from __future__ import annotations

import os
import statistics
import time
from collections import deque

RSS_SAMPLE_SECONDS = 0.5
MEDIAN_WINDOW = 200
MEDIAN_MIN_SAMPLES = 5
MEDIAN_REFRESH = 25  # the queue's median efficiency is recomputed every this many attempts

_rss_sample: tuple[float, int | None] = (-1e9, None)  # (taken at, bytes): one per process


def rss_bytes() -> int | None:
    """This process's resident memory, sampled at most every RSS_SAMPLE_SECONDS."""
    global _rss_sample
    now = time.monotonic()
    if now - _rss_sample[0] >= RSS_SAMPLE_SECONDS:
        _rss_sample = (now, _read_rss())
    return _rss_sample[1]


def _read_rss() -> int | None:
    """This process's resident memory now (Linux), else its peak."""
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        import resource

        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


class Efficiency:
    """Each queue's last MEDIAN_WINDOW rates (items/s) and their median, recomputed every
    MEDIAN_REFRESH attempts (a median per attempt would cost more than a quick chunk). The
    slots of one worker share it without a lock: a lost count or a median read while a rate is
    appended only shifts when the next refresh happens."""

    def __init__(self) -> None:
        self._windows: dict[str, deque[float]] = {}
        self._medians: dict[str, float | None] = {}
        self._samples: dict[str, int] = {}

    def median(self, queue_id: str) -> float | None:
        """The queue's median rate before this attempt; counts the attempt."""
        window = self._windows.get(queue_id)
        if window is None:
            window = self._windows[queue_id] = deque(maxlen=MEDIAN_WINDOW)
        seen = self._samples[queue_id] = self._samples.get(queue_id, 0) + 1
        refresh = (
            seen > MEDIAN_MIN_SAMPLES and (seen - MEDIAN_MIN_SAMPLES - 1) % MEDIAN_REFRESH == 0
        )
        if refresh and window:  # slots count before they add: the window may lag the count
            self._medians[queue_id] = statistics.median(window)
        return self._medians.get(queue_id)

    def add(self, queue_id: str, items_per_s: float | None) -> None:
        """Add an attempt's rate to its queue's window (after `median`)."""
        if items_per_s is not None:
            self._windows[queue_id].append(items_per_s)
