"""Retry policies on recorded, seeded fault streams: naive, exponential with full jitter,
chunksync's default without and with stress awareness; plus a healthy dependency with 1% of
malformed chunks. Simulated clock: a run takes seconds.

    python -m benchmarks.bench_policy [SEED ...]      (default: seeds 3, 7 and 11)

Prints a table per seed, the definitions, every figure with its target, and ends with name=value
lines pooled over the seeds (the last: backlog_recovery_reduction_vs_naive).
"""

from __future__ import annotations

import platform
import random
import sys
import time

from chunksync.faults import DEFAULT_SEED, generate_stream
from chunksync.simreport import report
from chunksync.simulate import builtin_policies, malformed_stream, run_all, simulate

SEEDS = (3, DEFAULT_SEED, 11)


def main(argv: list[str]) -> int:
    seeds = [int(a) for a in argv] or list(SEEDS)
    started = time.monotonic()
    runs = [run_all(generate_stream(seed), builtin_policies(), seed=seed) for seed in seeds]
    sick, healthy = malformed_stream(seeds[0]), malformed_stream(seeds[0], malformed=False)
    poison = [
        (
            simulate(sick, spec, rng=random.Random(seeds[0])),
            simulate(healthy, spec, rng=random.Random(seeds[0])),
        )
        for spec in builtin_policies()
    ]
    lines = report(runs[0], other_seeds=runs[1:], poison=poison)
    print(f"python {platform.python_version()}; simulated in {time.monotonic() - started:.1f} s")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
