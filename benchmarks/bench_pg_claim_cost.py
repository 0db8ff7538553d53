"""Claim cost as history grows: the same claims against an almost empty table and against one
with 1,000,000 finished and 100,000 pending chunks (target: within 1.5x).

Claims go through `Manager.claim` (one `FOR UPDATE SKIP LOCKED` statement in a transaction),
one chunk each, on a durable throwaway cluster after VACUUM ANALYZE. The history is written
with set-based SQL to keep the setup short. Env: CHUNKSYNC_BENCH_FINISHED (default 1000000),
CHUNKSYNC_BENCH_PENDING (default 100000), CHUNKSYNC_BENCH_CLAIMS (default 2000).

Then a backlog that no claim can take, ahead in the fair order (docs/benchmarks.md): a big
tenant's queue of CHUNKSYNC_BENCH_BEHIND chunks (default 100000) enqueued before a small
tenant's, then BEHIND_CLAIMS claims of 512 from the small one, as a worker's: with the big queue
paused (`paused`: its chunks in a claim group of their own since migration 0027, the time the
pause took to move them printed), or left out by the claim's own `exclude` (`excluded`, a known
cost not yet fixed), or a rate-limited dependency's (`limited`: claimed by claim_chunks_of, and
in a claim group of its own since migration 0025, so not read past), or of a tenant at its
in-flight quota (`quota`: at most 1, and one held; a known cost not yet fixed), or runnable
(`none`, the claims take from both). In the excluded and quota cases the first claims read past
few of the big queue's chunks, the last ones past all those the claims before them passed. Prints
`claim_behind_ms_<case>=` (the median of the last five claims). Then a newcomer tenant enqueues
NEWCOMER chunks (`enqueue_behind_ms_<case>=`, the enqueue's time, which reads the virtual time)
and two more claims of 512 follow: `newcomer_share_behind_<case>=`, the newcomer's share of
them. Its fair share is a half (a third with `none`, whose big tenant is runnable too); before
2026-12-06 a newcomer's places started behind the blocked backlog's head, and it took all of
them (`excluded`: still, the virtual time cannot know a claim's own `exclude`).
Then many tenants with an in-flight quota (`capped`): CHUNKSYNC_BENCH_CAPPED_TENANTS tenants
(default 5000), a queue of 20 chunks each, and CAPPED_THREADS threads claiming one chunk at a
time (a fleet of slow chunks' shape) and giving it back at once, for CAPPED_SECONDS, first
with no quota, then with `max_in_flight=5` for every tenant (never reached):
`claims_per_s_uncapped=`, `claims_per_s_capped=` and the median claim `claim_ms_capped=`. With
quotas a claim counts each capped tenant's chunks in flight, then holds the rows of those it
took chunks of and counts theirs again (tenants.keep_quotas); until 2026-12-06 it held every
capped tenant's row, and the fleet's claims took turns.
Then many active queues (`active`): 0, 5,000, 20,000 and 50,000 active queues without chunks
(a fleet syncing many tenants' folders at once), then ten queues of 1,000 chunks, and claims of
100: `claim_ms_active_queues_<n>=`, the median claim. Up to 500 queues it may claim from, a
claim builds an array of them and compares each chunk it reads with it; past that, it looks up
each chunk's queue (docs/tenants.md). Before 2026-12-07 it always built the array: ~0.6 us per
active queue a claim.
Then many capped accounts (`accounts`): 0, 2,000 and 5,000 accounts under a declared pattern
with a connection cap (`noop://*@mail.example`, docs/dependencies.md: Gmail's per-account
limit), a queue of ten chunks each (claimed by claim_chunks_of), then ten plain queues of 1,000
chunks, and plain claims of 100: `claim_ms_capped_accounts_<n>=`, the median claim. Before
2026-12-07 each active queue's dependency was compared with an array of every capped one: 152
ms a claim at 5,000 accounts, paid by every worker's every claim.
Last line: claim_cost_ratio_1m.
"""

from __future__ import annotations

import os
import statistics
import time
from typing import TYPE_CHECKING

import psycopg
from tests.servers.pgcluster import PgCluster, throwaway

if TYPE_CHECKING:
    from chunksync.app import App

FINISHED = int(os.environ.get("CHUNKSYNC_BENCH_FINISHED", "1000000"))
PENDING = int(os.environ.get("CHUNKSYNC_BENCH_PENDING", "100000"))
CLAIMS = int(os.environ.get("CHUNKSYNC_BENCH_CLAIMS", "2000"))
SMALL_PENDING = CLAIMS + 1000  # "almost empty": just enough to claim from
BEHIND = int(os.environ.get("CHUNKSYNC_BENCH_BEHIND", "100000"))
BEHIND_CLAIMS, BEHIND_BATCH = 100, 512
NEWCOMER = 1000
CAPPED_TENANTS = int(os.environ.get("CHUNKSYNC_BENCH_CAPPED_TENANTS", "5000"))
CAPPED_THREADS, CAPPED_SECONDS = 4, 5.0
ACTIVE_QUEUES = [0, 5000, 20000, 50000]
ACTIVE_CLAIMS = 30
CAPPED_ACCOUNTS = [
    int(n) for n in os.environ.get("CHUNKSYNC_BENCH_CAPPED_ACCOUNTS", "0,2000,5000").split(",")
]
EMPTY_QUEUES = """
INSERT INTO queues (id, tenant, name, source, kind, status, priority, policy, max_attempts,
                    created_at, updated_at)
SELECT gen_random_uuid(), 'idle' || (g %% 5000), 'idle' || g, 'noop', 'noop', 'active', 0,
       'default', 5, 0, 0
FROM generate_series(1, %(n)s::int) AS g
"""

FILL = """
INSERT INTO chunks (id, queue_id, tenant, seq, payload, status, priority, attempts,
                    max_attempts, run_after, created_at, updated_at, finished_at)
SELECT gen_random_uuid(), %(queue)s, 'default', g, '{}'::jsonb, %(status)s, 0,
       CASE WHEN %(status)s = 'completed' THEN 1 ELSE 0 END, 5, now_s, now_s - %(n)s + g,
       now_s, CASE WHEN %(status)s = 'completed' THEN now_s END
FROM generate_series(%(first)s, %(first)s + %(n)s - 1) AS g,
     (SELECT date_part('epoch', now()) AS now_s) AS t
"""


def prepare(url: str, finished: int, pending: int) -> str:
    from chunksync.app import App

    with App(url) as app:
        app.handler("noop")(lambda ctx: None)
        queue = app.create_queue("noop", payloads=[])
    with psycopg.connect(url, autocommit=True) as conn:
        for status, first, n in (("completed", 1, finished), ("pending", finished + 1, pending)):
            if n:
                conn.execute(
                    FILL.encode(), {"queue": queue.id, "status": status, "first": first, "n": n}
                )
        conn.execute(b"VACUUM ANALYZE")
    return queue.id


def claim_seconds(url: str) -> list[float]:
    from chunksync.app import App

    times = []
    with App(url) as app:
        for _ in range(100):  # warm the caches and the prepared statement
            app.manager.claim("warm", ["noop"], limit=1)
        for _ in range(CLAIMS):
            started = time.perf_counter()
            _, chunks = app.manager.claim("bench", ["noop"], limit=1)
            times.append(time.perf_counter() - started)
            assert chunks, "ran out of pending chunks"
    return times


def behind_ms(url: str, case: str) -> tuple[float, float]:
    """Median claim (ms) of the first and of the last five BEHIND_CLAIMS from the small queue;
    then the newcomer's enqueue and share (printed)."""
    from chunksync.app import App

    with App(url) as app:
        app.handler("noop")(lambda ctx: None)
        source = "noop"
        if case == "limited":  # a rate-limited dependency's queue: claim_chunks_of claims it
            source = "noop://big.example/pages"
            app.dependency("noop://big.example", rate="10/s")
        big = app.create_queue(source, ({} for _ in range(BEHIND)), tenant="big")
        n = BEHIND_CLAIMS * BEHIND_BATCH
        # And two claims' worth more, to take turns with the newcomer's after the claims.
        small = app.create_queue("noop", ({} for _ in range(n + 2 * BEHIND_BATCH)), tenant="small")
        if case == "paused":  # and its chunks moved to the paused group (migration 0027)
            started = time.perf_counter()
            app.manager.pause_queue(big.id, move_s=None)
            print(f"paused {BEHIND} chunks in {time.perf_counter() - started:.2f} s")
        if case == "quota":  # the big tenant at its in-flight quota: one chunk of one
            app.manager.tenants.set("big", actor="bench", reason="bench", max_in_flight=1)
            _, held = app.manager.claim("other", ["noop"], queue_id=big.id, lease_s=3600.0)
            assert len(held) == 1
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(b"VACUUM ANALYZE")
        exclude = [big.id] if case == "excluded" else []
        times = []
        for _ in range(BEHIND_CLAIMS):
            started = time.perf_counter()
            _, chunks = app.manager.claim("bench", ["noop"], limit=BEHIND_BATCH, exclude=exclude)
            times.append((time.perf_counter() - started) * 1000)
            assert len(chunks) == BEHIND_BATCH, "ran out of pending chunks"
            assert case == "none" or {c.queue_id for c in chunks} == {small.id}
        newcomer(app, case, exclude)
    return statistics.median(times[:5]), statistics.median(times[-5:])


def newcomer(app: App, case: str, exclude: list[str]) -> None:
    """A new tenant's enqueue after the claims, and its share of the next two claims."""
    started = time.perf_counter()
    app.create_queue("noop", ({} for _ in range(NEWCOMER)), tenant="newcomer")
    enqueue_ms = (time.perf_counter() - started) * 1000
    taken = []
    for _ in range(2):
        _, chunks = app.manager.claim("bench", ["noop"], limit=BEHIND_BATCH, exclude=exclude)
        taken += [c.tenant for c in chunks]
    share = taken.count("newcomer") / len(taken)
    print(f"a newcomer's {NEWCOMER} chunks enqueued in {enqueue_ms:.1f} ms; the next "
          f"{len(taken)} claimed: {share:.2f} the newcomer's ({case})")  # fmt: skip
    print(f"enqueue_behind_ms_{case}={enqueue_ms:.1f}")
    print(f"newcomer_share_behind_{case}={share:.2f}")


def behind(cluster: PgCluster) -> None:
    for case in ("none", "paused", "excluded", "limited", "quota"):
        first, last = behind_ms(cluster.create_database(f"behind_{case}"), case)
        print(f"claims of {BEHIND_BATCH} from a small queue, {BEHIND} chunks ahead ({case}): "
              f"first five {first:.1f} ms, last five {last:.1f} ms")  # fmt: skip
        print(f"claim_behind_ms_{case}={last:.1f}")


def capped(cluster: PgCluster) -> None:
    """Claims per second of CAPPED_THREADS claimers over many tenants, without and with quotas."""
    from chunksync.app import App

    url = cluster.create_database("capped")
    with App(url) as app:
        app.handler("noop")(lambda ctx: None)
        for t in range(CAPPED_TENANTS):
            app.manager.create_queue(f"q{t}", "noop", "noop", [{}] * 20, tenant=f"t{t}")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(b"VACUUM ANALYZE")
    uncapped, _ = claims_per_s(url)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            b"INSERT INTO tenants (id, max_in_flight, created_at, updated_at) "
            b"SELECT DISTINCT tenant, 5, 0, 0 FROM queues"
        )
    rate, ms = claims_per_s(url)
    print(f"claims of one chunk by {CAPPED_THREADS} threads over {CAPPED_TENANTS} tenants: "
          f"{uncapped:.0f}/s without quotas, {rate:.0f}/s with one each "
          f"({ms:.1f} ms a claim)")  # fmt: skip
    print(f"claims_per_s_uncapped={uncapped:.0f}")
    print(f"claims_per_s_capped={rate:.0f}")
    print(f"claim_ms_capped={ms:.1f}")


def active(cluster: PgCluster) -> None:
    """A claim of 100 among many active queues. The queues with chunks (ten, 1,000 chunks each)
    are made after the others: where a claim compares each chunk it reads with the array of
    the queues it may claim from, that is the worst case."""
    from chunksync.app import App

    for n in ACTIVE_QUEUES:
        url = cluster.create_database(f"active_{n}")
        with App(url) as app:
            app.handler("noop")(lambda ctx: None)
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(EMPTY_QUEUES.encode(), {"n": n})
            ms = busy_claims_ms(app, url)
        print(f"a claim of 100 with {n} more active queues (empty) ahead: {ms:.1f} ms")
        print(f"claim_ms_active_queues_{n}={ms:.1f}")


def busy_claims_ms(app: App, url: str) -> float:
    """Ten tenants' queues of 1,000 chunks after what the database holds, analyzed; then the
    median of ACTIVE_CLAIMS plain claims of 100 from them."""
    for t in range(10):
        app.create_queue("noop", ({} for _ in range(1000)), tenant=f"busy{t}")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(b"VACUUM ANALYZE")
    times = []
    for _ in range(ACTIVE_CLAIMS):
        started = time.perf_counter()
        _, chunks = app.manager.claim("bench", ["noop"], limit=100)
        times.append((time.perf_counter() - started) * 1000)
        assert len(chunks) == 100, "ran out of pending chunks"
    return statistics.median(times)


def accounts(cluster: PgCluster) -> None:
    """A plain claim of 100 beside many capped accounts' queues (their chunks are not its)."""
    from chunksync.app import App

    for n in CAPPED_ACCOUNTS:
        url = cluster.create_database(f"accounts_{n}")
        with App(url) as app:
            app.handler("noop")(lambda ctx: None)
            app.dependency("noop://*@mail.example", connections=2)
            for i in range(n):
                app.create_queue(f"noop://u{i}@mail.example/INBOX", [{}] * 10, tenant=f"a{i}")
            ms = busy_claims_ms(app, url)
        print(f"a claim of 100 beside {n} capped accounts' queues: {ms:.1f} ms")
        print(f"claim_ms_capped_accounts_{n}={ms:.1f}")


def claims_per_s(url: str) -> tuple[float, float]:
    """CAPPED_THREADS threads, each with its own connection, claiming one chunk at a time (and
    giving it back): claims per second, and the median claim in ms."""
    import threading

    from chunksync.app import App

    times: list[float] = []
    until = time.monotonic() + CAPPED_SECONDS

    def claimer() -> None:
        with App(url) as app:
            while time.monotonic() < until:
                started = time.perf_counter()
                token, chunks = app.manager.claim("bench", ["noop"], limit=1)
                times.append(time.perf_counter() - started)
                assert chunks, "no pending chunk to claim"
                # Given back at once: the chunks in flight stay few, and no quota is reached.
                app.manager.release(chunks[0], token, refund=True)

    threads = [threading.Thread(target=claimer) for _ in range(CAPPED_THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return len(times) / CAPPED_SECONDS, statistics.median(times) * 1000


def main() -> int:
    with throwaway(durable=True) as cluster:
        small = cluster.create_database("claim_small")
        big = cluster.create_database("claim_big")
        prepare(small, 0, SMALL_PENDING)
        started = time.monotonic()
        prepare(big, FINISHED, PENDING)
        print(f"history of {FINISHED} finished + {PENDING} pending written in "
              f"{time.monotonic() - started:.0f} s")  # fmt: skip
        small_times, big_times = claim_seconds(small), claim_seconds(big)
        behind(cluster)
        capped(cluster)
        active(cluster)
        accounts(cluster)
    small_ms = statistics.median(small_times) * 1000
    big_ms = statistics.median(big_times) * 1000
    print(f"median claim, {SMALL_PENDING} pending, no history: {small_ms:.3f} ms")
    print(f"median claim, {FINISHED} finished + {PENDING} pending: {big_ms:.3f} ms")
    print(f"claim_cost_ratio_1m={big_ms / small_ms:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
