"""Two source trees' IMAP syncs in turns (A B B A ...): a change to the sync measured against the
code before it on this noisy machine. Not in `make bench`.

    git worktree add /tmp/before <commit>
    .venv/bin/python -m benchmarks.paired_sync /tmp/before . [--messages 100000] [--pairs 3]

One Dovecot mailbox (`bench_imap_sync.prepare`); each turn is the real CLI (`chunksync sync`)
into a fresh SQLite store, with chunksync imported from its tree, after an untimed `sync()`.
Extra CLI options for either side: `--args-a`, `--args-b` (e.g. `--args-b "--concurrency 2"`,
with the same tree twice). Prints every turn: the wall time, the CPU of chunksync's processes
(the CLI and its helpers, `getrusage` of the children) and of the whole machine (`/proc/stat`),
then the medians.
"""

from __future__ import annotations

import argparse
import os
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(HERE))


def machine_busy() -> float:
    """CPU-seconds the machine has spent busy since boot (all cores; idle and iowait left out)."""
    ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


def turn(tree: Path, uri: str, password: str, extra: list[str]) -> tuple[float, float, float]:
    """One sync into a new store: (wall s, chunksync CPU s, machine busy CPU s)."""
    with tempfile.TemporaryDirectory() as work:
        command = [sys.executable, "-c", "from chunksync.entry import main; main()"]
        command += ["--db", f"sqlite:///{work}/store.db", "sync", uri]
        command += ["--password-env", "BENCH_PW", *extra]
        env = {**os.environ, "BENCH_PW": password, "PYTHONPATH": str(tree / "src")}
        os.sync()
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        busy, started = machine_busy(), time.perf_counter()
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if done.returncode:
            raise SystemExit(f"sync failed ({done.returncode}): {done.stderr[-600:]}")
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        return wall, cpu, machine_busy() - busy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("a", type=Path)
    parser.add_argument("b", type=Path)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--args-a", default="")
    parser.add_argument("--args-b", default="")
    args = parser.parse_args()
    from tests.servers.dovecot import start_dovecot

    from benchmarks.bench_imap_sync import prepare
    from benchmarks.trees import compiled

    sides = {
        "A": (compiled(args.a), shlex.split(args.args_a)),
        "B": (compiled(args.b), shlex.split(args.args_b)),
    }
    walls: dict[str, list[float]] = {"A": [], "B": []}
    server = start_dovecot(max_connections=50)
    try:
        box = prepare(server, args.messages)
        for n in range(args.pairs):
            for side in ("A", "B") if n % 2 == 0 else ("B", "A"):
                tree, extra = sides[side]
                wall, cpu, busy = turn(tree, box.uri(), box.password, extra)
                walls[side].append(wall)
                print(f"pair {n + 1} {side}: {wall:.2f} s, chunksync CPU {cpu:.2f} s, "
                      f"machine busy {busy:.2f} CPU-s", flush=True)  # fmt: skip
    finally:
        server.close()
    for side, times in walls.items():
        print(f"{side}_median_s={statistics.median(times):.2f}")


if __name__ == "__main__":
    main()
