"""Attempt rollups: the health questions answered at any size.

Every attempt row is added to a per-minute, a per-hour and an all-time rollup row (queue,
tenant, outcome, category: counts and sums) and to its queue's hourly and all-time processing-time
histograms, but not when it is written: a worker's finish stays a plain insert. The maintenance
leader `fold`s the attempts past a watermark into the rollups every ROLLUP_FOLD_EVERY_SECONDS,
one transaction of grouped upserts, and readers read the rollups plus the attempts past the
watermark (the database's *_live views: a short tail read through the primary key), so no figure
is ever stale or counted twice. An attempt is folded only once every transaction that could have
written an older id has ended: a fold goes up to the newest id the previous fold saw, at least
ROLLUP_FOLD_LAG_SECONDS ago, and attempts are written in short transactions (docs/scaling.md
gives the argument; `rebuild` is the exact fallback). Counts, sums, averages and rates read from
them are exact; a window (the last 5 or 60 minutes) is the minute rows from the window's first
whole minute on plus the raw attempts of its first partial minute, so it is exact too. A
percentile is exact (from the raw rows) up to EXACT_PERCENTILE_MAX_ATTEMPTS timed attempts and
beyond that read from the histogram, whose logarithmic bins (LATENCY_RATIO wide) keep it within
that ratio.

A queue's all-time figures read its all-time rows (width 0, bucket 0: one row per tenant,
outcome and category, one histogram), so they cost the same after a day or a year; the hourly
trend reads the hour rows, the windows the minute rows.

Retention deletes raw attempts but not their rollups: hourly rollups are kept
ROLLUP_RETENTION_DAYS, minute rollups MINUTE_ROLLUP_KEEP_SECONDS (the burn-rate and trend
windows need no more), the all-time rows as long as their queue. `rebuild` recomputes the
rollups that raw attempts still cover, exactly: the minute and hour rows from the hour of the
oldest raw attempt on, and the all-time rows by taking out the old hour rows it replaces and
adding the new ones.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass

from chunksync.manager import Manager

LATENCY_FLOOR_S = 0.001  # bin 0 holds every processing time up to this
LATENCY_RATIO = 1.15  # each bin past 0 is this much wider than the one before (as in the SQL)
EXACT_PERCENTILE_MAX_ATTEMPTS = 20_000  # up to this many, a percentile reads the raw rows
ROLLUP_RETENTION_DAYS = 400.0  # hourly rollups: longer than raw attempts (30 days)
MINUTE_ROLLUP_KEEP_SECONDS = 2 * 86400.0  # minute rollups: the slow burn-rate window and then some
ROLLUP_TRIM_BATCH_ROWS = 2000
ROLLUP_TRIM_MAX_BATCHES = 100  # per width per run: the leader comes back for the rest
DAY_SECONDS = 86400.0
ROLLUP_FOLD_EVERY_SECONDS = 5.0  # the leader's fold timer: the tail readers add stays this short
ROLLUP_FOLD_LAG_SECONDS = 5.0  # an id is folded no sooner than this after a fold saw it


def latency_bin(seconds: float) -> int:
    """The histogram bin of a processing time (the SQL's chunksync_latency_bin)."""
    if seconds <= LATENCY_FLOOR_S:
        return 0
    return 1 + math.floor(math.log(seconds / LATENCY_FLOOR_S) / math.log(LATENCY_RATIO))


def bin_value(bin_: int, share: float) -> float:
    """The value `share` (0..1) of the way through a bin (the SQL's chunksync_bin_value)."""
    share = min(max(share, 0.0), 1.0)
    if bin_ <= 0:
        return LATENCY_FLOOR_S * share
    low = LATENCY_FLOOR_S * LATENCY_RATIO ** (bin_ - 1)
    return low + (LATENCY_FLOOR_S * LATENCY_RATIO**bin_ - low) * share


def percentile_from_bins(bins: Iterable[tuple[int, int]], fraction: float) -> float | None:
    """A percentile read from a histogram [(bin, count)], interpolated inside its bin like the
    SQL's chunksync_latency_percentile: rank fraction*(n-1), at the middle of its slot."""
    ordered = sorted((b, n) for b, n in bins if n > 0)
    total = sum(n for _, n in ordered)
    if not total:
        return None
    rank = fraction * (total - 1)
    cum = 0
    for b, n in ordered:
        cum += n
        if cum > rank:
            return bin_value(b, (rank - (cum - n) + 0.5) / n)
    return None  # pragma: no cover - cum reaches total > rank


@dataclass(frozen=True, slots=True)
class RollupTrim:
    minutes: int = 0
    hours: int = 0
    latency: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)

    @property
    def total(self) -> int:
        return self.minutes + self.hours + self.latency


def trim(
    manager: Manager,
    *,
    hour_keep_s: float = ROLLUP_RETENTION_DAYS * DAY_SECONDS,
    minute_keep_s: float = MINUTE_ROLLUP_KEEP_SECONDS,
    batch: int = ROLLUP_TRIM_BATCH_ROWS,
    max_batches: int | None = ROLLUP_TRIM_MAX_BATCHES,
) -> RollupTrim:
    """Delete rollups past their keep, batch by batch (each its own short transaction)."""

    def run(query: str, params: dict[str, object]) -> int:
        total = batches = 0
        while max_batches is None or batches < max_batches:
            n = max(manager.backend.execute(query, {**params, "limit": batch}), 0)
            total, batches = total + n, batches + 1
            if n < batch:
                break
        return total

    return RollupTrim(
        minutes=run("rollups_trim", {"width_s": 60, "older_than_s": minute_keep_s}),
        hours=run("rollups_trim", {"width_s": 3600, "older_than_s": hour_keep_s}),
        latency=run("rollups_trim_latency", {"older_than_s": hour_keep_s}),
    )


def fold(manager: Manager, *, lag_s: float = ROLLUP_FOLD_LAG_SECONDS) -> int:
    """Fold the attempts past the watermark into the rollups, in one transaction; returns how
    many attempt ids it moved the watermark by.

    It folds up to the newest attempt id the previous fold saw, if that was at least `lag_s`
    ago (else nothing yet): every attempt with a smaller id was being written by then, in a
    transaction that has ended since. `lag_s <= 0` folds exactly up to now instead, after
    waiting for every transaction writing attempts to end (and holding new ones off meanwhile):
    for retention, tests and benchmarks, not for the leader's timer. Folds serialise on the
    watermark's row, so two at once, or one repeated, never count an attempt twice."""
    with manager.backend.transaction() as s:
        if lag_s <= 0:
            s.execute("rollups_settle")
        mark = s.fetch_one("rollups_fold_mark")
        if mark is None:  # pragma: no cover - the migration writes the one row
            return 0
        after = int(mark["folded_id"])
        if lag_s <= 0:
            upto = int(mark["newest_id"])
        elif float(mark["seen_age_s"]) >= lag_s:
            upto = int(mark["seen_id"])
        else:
            return 0
        if upto > after:
            s.execute("rollups_fold", {"after": after, "upto": upto})
            s.execute("rollups_fold_latency", {"after": after, "upto": upto})
        s.execute("rollups_fold_advance", {"upto": max(upto, after)})
    return max(upto - after, 0)


def rebuild(manager: Manager) -> int | None:
    """Recompute, exactly, every rollup the raw attempts still cover (from the hour of the
    oldest one on); older rollups, whose attempts retention removed, stay. One transaction,
    holding off writers and folds; it leaves every attempt folded. Returns the hour it rebuilt
    from, None when there are no attempts."""
    with manager.backend.transaction() as s:
        s.execute("rollups_settle")
        mark = s.fetch_one("rollups_fold_mark")
        row = s.fetch_one("rollups_first_raw_hour")
        if row is None or row["since"] is None or mark is None:
            return None
        since = {"since": int(row["since"])}
        s.execute("rollups_lock")
        # The all-time rows lose what is about to be recomputed and gain what was: they keep
        # the attempts retention deleted, which no raw row can give back.
        s.execute("rollups_all_time_adjust", since | {"sign": -1})
        s.execute("rollups_latency_all_time_adjust", since | {"sign": -1})
        for query in (
            "rollups_clear_since",
            "rollups_clear_latency_since",
            "rollups_recompute_since",
            "rollups_recompute_latency_since",
        ):
            s.execute(query, since)
        s.execute("rollups_all_time_adjust", since | {"sign": 1})
        s.execute("rollups_latency_all_time_adjust", since | {"sign": 1})
        s.execute("rollups_fold_advance", {"upto": int(mark["newest_id"])})
    return since["since"]
