"""`make bench`: run every benchmarks/bench_*.py in turn, each in its own process.

Each benchmark prints its figures and ends with a `name=value` line; this runner echoes them and
collects the last lines into bench-results/summary.txt. Pass names to run only some:
`python -m benchmarks drain policy`.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent


def main(argv: list[str]) -> int:
    names = sorted(p.stem for p in HERE.glob("bench_*.py"))
    wanted = [n for n in names if not argv or n.removeprefix("bench_") in argv]
    results: list[str] = []
    failed = 0
    for name in wanted:
        print(f"== {name}", flush=True)
        started = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-m", f"benchmarks.{name}"],
            stdout=subprocess.PIPE,
            text=True,
            check=False,
        )
        print(proc.stdout, end="", flush=True)
        lines = [ln for ln in proc.stdout.splitlines() if "=" in ln]
        if proc.returncode != 0 or not lines:
            print(f"!! {name} failed (exit {proc.returncode})", flush=True)
            failed += 1
            continue
        results.append(lines[-1])
        print(f"   ({time.monotonic() - started:.0f} s)", flush=True)
    out = Path("bench-results")
    out.mkdir(exist_ok=True)
    (out / "summary.txt").write_text("\n".join(results) + "\n", encoding="utf-8")
    print("\n".join(results))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
