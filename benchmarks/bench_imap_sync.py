"""IMAP sync side by side: chunksync, mbsync and offlineimap pull the same Dovecot mailbox.

For each size (10,000 and 100,000 messages of about 4 KiB by default; BENCH_IMAP_SIZES=2000,20000
for a quick run), a fresh Dovecot user gets its Maildir written straight to disk, Dovecot indexes
it once (not timed), then each tool syncs INBOX into a fresh target of its own: chunksync into a
durable SQLite store (WAL, synchronous=NORMAL), mbsync (isync) and offlineimap into Maildirs,
all with their default settings. chunksync, the ceiling below and mbsync run in turns, five of
each (BENCH_IMAP_TURNS), and each is its median turn (its peak RSS the highest): this machine
swings by 1.5-2x within minutes, and a single run of each compared moments, not tools (mbsync,
which fsyncs every message, took 3.7 to 7.9 s for the same 10,000 in six runs in a row).
offlineimap runs once, after them (a run takes minutes at 100,000 messages). Each tool runs as
a child process, after an untimed sync() of what the runs before wrote; its time is wall clock
and its peak RSS is the larger of wait4()'s figure and the peak of its whole process tree's
summed RSS (sampled every 20 ms: chunksync's helper processes count). A tool that is not
installed is reported and skipped.

Beside them, the ceiling of the path (benchmarks/imap_ceiling.py): a raw FETCH of the same
messages into the same SQLite store, no parsing, as many connections as chunksync's processes.

Then `ratio_vs_mbsync_<messages>=<v>` for each size, and the last lines are
`imap_sync_msgs_per_s=<v>` (chunksync at the largest size),
`ratio_vs_mbsync=<v>`, `imap_ceiling_msgs_per_s=<v>`, `imap_ratio_vs_ceiling=<v>` and
`peak_rss_mb_100k=<v>` (chunksync's peak RSS at the largest size).
"""

from __future__ import annotations

import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DEFAULT_SIZES = (10_000, 100_000)
MESSAGE_BYTES = 4096
TOOL_TIMEOUT_SECONDS = 3600
TURNS = int(os.environ.get("BENCH_IMAP_TURNS", "5"))  # of chunksync, the ceiling and mbsync


@dataclass(frozen=True)
class Run:
    tool: str
    messages: int
    seconds: float
    peak_rss_mb: float
    ok: bool
    note: str = ""

    @property
    def rate(self) -> float:
        return self.messages / self.seconds if self.ok and self.seconds > 0 else 0.0


def sizes() -> list[int]:
    raw = os.environ.get("BENCH_IMAP_SIZES")
    return [int(x) for x in raw.split(",")] if raw else list(DEFAULT_SIZES)


def message(rng: random.Random, n: int) -> bytes:
    """Message `n`: its Message-ID random, as a real mailbox's are (a sender's host makes it up):
    numbered ones (`<bench1@...>`, `<bench2@...>`) went into the store's Message-ID index in
    order, and hid what random ones cost a sync (a third of its time at 100,000 messages)."""
    head = (
        f"From: Sender {n % 97} <s{n % 97}@example.com>\r\nTo: bench@example.com\r\n"
        f"Subject: benchmark message {n}\r\nDate: Mon, 01 Jan 2024 00:00:00 +0000\r\n"
        f"Message-ID: <{rng.randbytes(16).hex()}@mail.example.com>\r\n\r\n"
    ).encode()
    words = b"lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor"
    line = words + b"\r\n"
    body = line * ((MESSAGE_BYTES - len(head)) // len(line))
    return head + body + rng.randbytes(16).hex().encode() + b"\r\n"


def fill(maildir: Path, count: int) -> None:
    rng = random.Random(count)
    cur = maildir / "cur"
    stamp = int(time.time())
    for n in range(count):
        raw = message(rng, n)
        size = len(raw)
        (cur / f"{stamp}.M{n}P1.bench,S={size},W={size}:2,S").write_bytes(raw)


def tree_rss_mb(pid: int) -> float:
    """The resident memory of a process and all its descendants now, in MB (Linux /proc)."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            status = Path(f"/proc/{p}/status").read_text()
            children = Path(f"/proc/{p}/task/{p}/children").read_text().split()
        except OSError:  # gone meanwhile
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
        todo.extend(int(c) for c in children)
    return total / 1024


class TreeSampler(threading.Thread):
    """The peak of a process tree's summed RSS, sampled every 20 ms: a tool that runs helper
    processes is measured with them (wait4's figure is one process's peak)."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak_mb, self.done = pid, 0.0, threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.02):
            self.peak_mb = max(self.peak_mb, tree_rss_mb(self.pid))


def measure(tool: str, messages: int, argv: list[str], env: dict[str, str] | None = None) -> Run:
    if shutil.which(argv[0]) is None:
        return Run(tool, messages, 0.0, 0.0, False, f"{argv[0]} is not installed")
    # Untimed: the writes of the runs before (and the removal of their targets) reach the disk
    # now, not during this run (mbsync fsyncs every message it writes).
    os.sync()
    started = time.monotonic()
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    assert proc.stderr is not None
    sampler = TreeSampler(proc.pid)
    sampler.start()
    err = proc.stderr.read()  # before wait4: a full pipe would block the child
    sampler.done.set()
    sampler.join()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.monotonic() - started
    ok = proc.returncode == 0
    note = "" if ok else err.decode(errors="replace").strip().splitlines()[-1:][0:1]
    peak_mb = max(usage.ru_maxrss / 1024, sampler.peak_mb)
    return Run(tool, messages, seconds, peak_mb, ok, str(note))


def count_files(path: Path) -> int:
    return sum(len(files) for d, _, files in os.walk(path) if d.endswith(("/cur", "/new")))


def ceiling_run(port: int, user: str, password: str, count: int, db: Path) -> Run:
    """The raw FETCH into the same store (benchmarks/imap_ceiling.py), on a store chunksync
    made beforehand (not timed)."""
    from chunksync.app import App

    App(f"sqlite:///{db}").close()
    argv = [sys.executable, "-m", "benchmarks.imap_ceiling", "--port", str(port)]
    argv += ["--user", user, "--db", str(db)]
    return measure("raw FETCH", count, argv, {"BENCH_PW": password, "PYTHONPATH": str(ROOT)})


def prepare(server: object, count: int) -> Any:
    """A fresh Dovecot user holding `count` messages, indexed and in the page cache."""
    from tests.servers.dovecot import DovecotServer

    assert isinstance(server, DovecotServer)
    box = server.add_user()
    fill(box.maildir, count)
    subprocess.run(["chown", "-R", "mail:mail", str(box.maildir)], check=True)
    # Untimed warm-up: Dovecot builds its index and cache and the files enter the page cache,
    # so that no tool pays for that and none profits from another's run.
    server.doveadm("mailbox", "status", "-u", box.user, "messages", "INBOX")
    fetch = ["doveadm", "-c", str(server.conf), "fetch", "-u", box.user]
    fetch += ["uid flags date.received size.virtual body", "mailbox", "INBOX"]
    subprocess.run(fetch, stdout=subprocess.DEVNULL, check=True)
    return box


def mbsync_run(port: int, box: Any, count: int, target: Path) -> Run:
    """mbsync into a new Maildir, with a state of its own (~/.mbsync/ would carry the state of
    an earlier run into this one): only that differs from its defaults."""
    (target / "mail").mkdir(parents=True)
    conf = target / "mbsyncrc"
    conf.write_text(
        f"IMAPAccount bench\nHost 127.0.0.1\nPort {port}\nUser {box.user}\n"
        f"Pass {box.password}\nSSLType None\nAuthMechs LOGIN\n\n"
        "IMAPStore remote\nAccount bench\n\n"
        f"MaildirStore local\nPath {target}/mail/\nInbox {target}/mail/INBOX\n\n"
        "Channel bench\nFar :remote:\nNear :local:\nPatterns INBOX\nCreate Near\nSync Pull\n"
        f"SyncState {target}/state/\n",
        encoding="utf-8",
    )
    return checked(measure("mbsync", count, ["mbsync", "-c", str(conf), "-a"]), target / "mail")


def offlineimap_run(port: int, box: Any, count: int, work: Path) -> Run:
    target = Path(tempfile.mkdtemp(prefix="offlineimap-", dir=work))
    conf = target / "offlineimaprc"
    conf.write_text(
        f"[general]\naccounts = bench\nmetadata = {target}/meta\n\n"
        "[Account bench]\nlocalrepository = local\nremoterepository = remote\n\n"
        f"[Repository local]\ntype = Maildir\nlocalfolders = {target}/mail\n\n"
        f"[Repository remote]\ntype = IMAP\nremotehost = 127.0.0.1\nremoteport = {port}\n"
        f"remoteuser = {box.user}\nremotepass = {box.password}\nssl = no\nstarttls = no\n"
        "folderfilter = lambda folder: folder == 'INBOX'\n",
        encoding="utf-8",
    )
    (target / "mail").mkdir()
    argv = ["offlineimap", "-c", str(conf), "-o", "-u", "quiet"]
    return checked(measure("offlineimap", count, argv), target / "mail")


def checked(run: Run, maildir: Path) -> Run:
    """A peer's run, failed if its Maildir does not hold every message."""
    found = count_files(maildir)
    if run.ok and found != run.messages:
        return replace(run, ok=False, note=f"synced {found} of {run.messages}")
    return run


def median_run(runs: list[Run]) -> Run:
    """One tool's turns as one: the median time, the highest peak RSS, failed if any turn was."""
    failed = [r for r in runs if not r.ok]
    if failed:
        return failed[0]
    seconds = statistics.median(r.seconds for r in runs)
    return replace(runs[0], seconds=seconds, peak_rss_mb=max(r.peak_rss_mb for r in runs))


def run_size(server: Any, count: int, work: Path) -> list[Run]:
    """chunksync, the raw FETCH and mbsync in turns (TURNS of each, fresh targets every turn),
    then offlineimap once (a turn of it takes minutes at 100,000); medians."""
    box = prepare(server, count)
    chunksync = str(Path(sys.executable).parent / "chunksync")
    turns: dict[str, list[Run]] = {"chunksync": [], "raw FETCH": [], "mbsync": []}
    for turn in range(TURNS):
        here = work / f"{count}-turn-{turn}"  # this turn's targets, removed after it
        here.mkdir()
        db = here / "chunksync.db"
        argv = [chunksync, "--db", f"sqlite:///{db}", "sync", box.uri(), "--password-env"]
        ours = measure("chunksync", count, [*argv, "BENCH_PW"], {"BENCH_PW": box.password})
        turns["chunksync"].append(ours)
        turns["raw FETCH"].append(
            ceiling_run(server.port, box.user, box.password, count, here / "ceiling.db")
        )
        turns["mbsync"].append(mbsync_run(server.port, box, count, here / "mbsync"))
        shutil.rmtree(here, ignore_errors=True)
        print(
            f"   turn {turn + 1}: "
            + ", ".join(f"{tool} {runs[-1].seconds:.2f} s" for tool, runs in turns.items()),
            flush=True,
        )
    runs = [median_run(r) for r in turns.values()]
    return [*runs, offlineimap_run(server.port, box, count, work)]


def main() -> int:
    from tests.servers.dovecot import start_dovecot

    try:
        server = start_dovecot(max_connections=50)
    except BaseException as exc:  # pytest's skip outside a test: Dovecot is missing
        print(f"cannot start Dovecot: {exc}")
        return 1
    work = Path(tempfile.mkdtemp(prefix="chunksync-bench-imap-"))
    results: list[list[Run]] = []
    try:
        for count in sizes():
            print(f"-- {count} messages of ~{MESSAGE_BYTES} bytes", flush=True)
            runs = run_size(server, count, work)
            results.append(runs)
            for r in runs:
                status = "" if r.ok else f"  FAILED: {r.note}"
                print(
                    f"   {r.tool:12} {r.seconds:8.2f} s {r.rate:9.0f} msg/s "
                    f"{r.peak_rss_mb:7.1f} MB peak RSS{status}",
                    flush=True,
                )
            ours = runs[0]
            for other in runs[1:]:
                if other.ok and ours.ok:
                    print(f"   chunksync / {other.tool}: {ours.rate / other.rate:.2f}x throughput")
    finally:
        server.close()
        shutil.rmtree(work, ignore_errors=True)
    for runs in results:  # each size's own, against its target (#18: >= 5 at 10,000)
        ours, mbsync = runs[0], runs[2]
        if mbsync.rate:
            print(f"ratio_vs_mbsync_{ours.messages}={ours.rate / mbsync.rate:.2f}")
    last = results[-1]
    top, mbsync = last[1], last[2]
    ratio = last[0].rate / mbsync.rate if mbsync.ok and mbsync.rate else 0.0
    print(f"imap_sync_msgs_per_s={last[0].rate:.0f}")
    print(f"ratio_vs_mbsync={ratio:.2f}")
    print(f"imap_ceiling_msgs_per_s={top.rate:.0f}")
    print(f"imap_ratio_vs_ceiling={last[0].rate / top.rate if top.rate else 0.0:.2f}")
    print(f"peak_rss_mb_100k={last[0].peak_rss_mb:.1f}")
    return 0 if all(r.ok for r in last[:1]) else 1


if __name__ == "__main__":
    raise SystemExit(main())
