"""The ceiling of an IMAP pull into chunksync's SQLite store: a raw FETCH of the same messages
into the same table, with nothing else.

`python -m benchmarks.imap_ceiling --port P --user U --db PATH [--processes N]` (password in
BENCH_PW): N processes (chunksync's own default: one per core), each on one connection through
the standard library's imaplib, `UID FETCH` of BATCH messages at a time (`UID RFC822.SIZE
INTERNALDATE BODY.PEEK[]`), rows written to `mail_messages` (the store chunksync made, WAL,
synchronous=NORMAL) in one transaction per batch, with their SHA-256 (the store's byte-exact
check). No MIME parsing, no envelope, no chunks, no queue, no fencing, no resumption: what
chunksync adds over this is the distance `imap_ratio_vs_ceiling` measures.
"""

from __future__ import annotations

import argparse
import hashlib
import imaplib
import multiprocessing
import os
import re
import sqlite3
import time

BATCH = 500
_HEAD = re.compile(rb"UID (\d+).*?RFC822\.SIZE (\d+)", re.DOTALL)
_INSERT = (
    "INSERT INTO mail_messages (account, folder, uidvalidity, uid, size, sha256, raw, flags,"
    " stored_at, updated_at) VALUES (?, 'INBOX', ?, ?, ?, ?, ?, '', ?, ?)"
)


def _pull(port: int, user: str, db: str, uids: list[int]) -> int:
    conn = sqlite3.connect(db, timeout=60, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    imap = imaplib.IMAP4("127.0.0.1", port)
    imap.login(user, os.environ["BENCH_PW"])
    imap.select("INBOX", readonly=True)
    validity = int(imap.response("UIDVALIDITY")[1][0] or 0)
    stored = 0
    for start in range(0, len(uids), BATCH):
        part = uids[start : start + BATCH]
        _, data = imap.uid("FETCH", f"{part[0]}:{part[-1]}", "(UID RFC822.SIZE BODY.PEEK[])")
        now = time.time()
        rows = []
        for item in data:
            if isinstance(item, tuple):
                found = _HEAD.search(item[0])
                assert found is not None, item[0]
                raw = item[1]
                digest = hashlib.sha256(raw).hexdigest()
                rows.append((user, validity, int(found[1]), int(found[2]), digest, raw, now, now))
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(_INSERT, rows)
        conn.execute("COMMIT")
        stored += len(rows)
    imap.logout()
    conn.close()
    return stored


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.imap_ceiling")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--db", required=True)
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    imap = imaplib.IMAP4("127.0.0.1", args.port)
    imap.login(args.user, os.environ["BENCH_PW"])
    imap.select("INBOX", readonly=True)
    _, found = imap.uid("SEARCH", "ALL")
    imap.logout()
    uids = [int(u) for u in found[0].split()]
    share = -(-len(uids) // args.processes)
    parts = [uids[i : i + share] for i in range(0, len(uids), share)]
    with multiprocessing.get_context("fork").Pool(len(parts)) as pool:
        stored = sum(pool.starmap(_pull, [(args.port, args.user, args.db, p) for p in parts]))
    print(f"stored {stored} of {len(uids)}")
    return 0 if stored == len(uids) else 1


if __name__ == "__main__":
    raise SystemExit(main())
