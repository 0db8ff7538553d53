"""Two source trees' drains in turns (A B, B A, ...): a change measured against the code before it
on this noisy machine, where single runs of the same code swing by 20%. Not in `make bench`.

    git worktree add /tmp/before <commit>
    .venv/bin/python -m benchmarks.paired_drains /tmp/before . [--pairs 5] [--pg]

Each turn is a child process that imports chunksync from its tree (and these benchmarks from
this one). SQLite: one slot, 20,000 no-op chunks (`bench_sqlite_drain.drain`), then the SQL alone
(`sqlite_ceiling.ceiling`). `--pg`: two worker processes (bench_pg_drain's best count) on a
fresh, settled PostgreSQL cluster (`bench_pg_drain.drain_chunksync_cpu`): chunks/s, and the
workers' and PostgreSQL's CPU per chunk. The trees take turns first (A B, B A, ...). Prints every
turn, then the medians, and in how many pairs "after" read higher on each figure.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.trees import compiled

HERE = Path(__file__).resolve().parent.parent


def turn(tree: Path, pg: bool) -> dict[str, float]:
    """One drain (and the SQLite ceiling) with chunksync imported from `tree`."""
    code = f"""
import json, sys, tempfile
from pathlib import Path
sys.path[:0] = [{str(tree / "src")!r}, {str(HERE)!r}]

def main():
    import chunksync
    assert chunksync.__file__.startswith({str(tree)!r}), chunksync.__file__
    if {pg!r}:
        from benchmarks.bench_pg_drain import drain_chunksync_cpu
        from tests.servers.pgcluster import PgCluster
        cluster = PgCluster(durable=True).start()
        try:
            rate, cpu, server = drain_chunksync_cpu(cluster, 2)
        finally:
            cluster.stop()
        print(json.dumps({{"chunks_per_s": rate, "cpu_us_per_chunk": cpu,
                          "server_cpu_us_per_chunk": server}}))
    else:
        from benchmarks.bench_sqlite_drain import drain
        from benchmarks.sqlite_ceiling import ceiling
        with tempfile.TemporaryDirectory() as tmp:
            rate = drain(Path(tmp), 1, 512)
            top = ceiling(Path(tmp), 20000)
        print(json.dumps({{"chunks_per_s": rate, "sql_alone_per_s": top}}))

if __name__ == "__main__":
    main()
"""
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "turn.py"
        script.write_text(code, encoding="utf-8")
        done = subprocess.run(
            [sys.executable, str(script)], capture_output=True, text=True, check=False, cwd=tmp
        )
    if done.returncode != 0:
        raise SystemExit(f"a turn in {tree} failed:\n{done.stderr[-2000:]}")
    found: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--pg", action="store_true", help="2-process PostgreSQL drains")
    args = parser.parse_args()
    trees = {"before": compiled(args.before), "after": compiled(args.after)}
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
    wins: dict[str, int] = {}
    for pair in range(args.pairs):
        # A B, then B A: a tree that always ran first (or second) would carry the machine's
        # drift within a pair, a cache warmed by the turn before, into its figures.
        order = list(trees.items()) if pair % 2 == 0 else list(trees.items())[::-1]
        for name, tree in order:
            runs[name].append(turn(tree, args.pg))
            shown = " ".join(f"{k}={v:.1f}" for k, v in runs[name][-1].items())
            print(f"pair {pair + 1} {name}: {shown}", flush=True)
        for k, after in runs["after"][-1].items():
            wins[k] = wins.get(k, 0) + (after > runs["before"][-1][k])
    for name, found in runs.items():
        medians = {k: statistics.median(r[k] for r in found) for k in found[0]}
        print(f"{name}_" + f" {name}_".join(f"{k}={v:.1f}" for k, v in medians.items()))
    print(" ".join(f"after_higher_{k}={n}/{args.pairs}" for k, n in wins.items()))


if __name__ == "__main__":
    main()
