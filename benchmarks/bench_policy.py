"""Retry policies on one recorded, seeded fault stream: naive, exponential with full jitter,
chunksync's default without and with stress awareness. Simulated clock: a run takes seconds.

    python -m benchmarks.bench_policy [SEED]

Prints the table, the definitions and ends with name=value lines (the last: stuck_auto_resolved).
"""

from __future__ import annotations

import platform
import sys
import time

from chunksync.faults import DEFAULT_SEED, generate_stream
from chunksync.simreport import report
from chunksync.simulate import builtin_policies, run_all


def main(argv: list[str]) -> int:
    seed = int(argv[0]) if argv else DEFAULT_SEED
    started = time.monotonic()
    results = run_all(generate_stream(seed), builtin_policies(), seed=seed)
    lines = report(results)
    print(f"python {platform.python_version()}; simulated in {time.monotonic() - started:.1f} s")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
