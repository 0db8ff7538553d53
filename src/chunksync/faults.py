"""The policy benchmark's fault stream: recorded, seeded, serialisable (JSON).

Per dependency: an outage window (every call fails), a rate-limit window (every call gets a 429
whose Retry-After says when the window ends), and per chunk a script, the outcome of each call
that reaches the healthy dependency: background noise of every category, a few permanent 404s
and 403s, a few worker deaths. The last entry of a script repeats forever, so a script ending in
a failure is a chunk that can never complete (its failure is permanent). Outcomes become the
real exceptions a client raises (`make_exception`), which the simulation categorizes.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from chunksync.exceptions import InvalidPayload
from chunksync.sources.demo import make_failure

DEFAULT_SEED = 7
DEFAULT_DEPENDENCIES = 3
DEFAULT_CHUNKS_PER_DEPENDENCY = 3000
DEFAULT_SLOTS = 4
NOISE_RATE = 0.03  # share of calls to a healthy dependency that fail
STREAM_FORMAT = 1

OK = "ok"
DIE = "die"  # the worker dies mid-call: no result, the chunk is stuck until its lease expires
REFUSED = "refused"  # connection refused: how a host that is down answers

# How long a failing call takes before it fails, in seconds (a success takes the chunk's ok_s).
CALL_SECONDS: Mapping[str, float] = {
    "timeout": 10.0,  # the client's timeout: a hung dependency holds the slot
    "network": 0.05,
    REFUSED: 0.02,
    "temporary": 0.2,
    "rate_limit": 0.1,
    "auth": 0.2,
    "permission": 0.2,
    "not_found": 0.2,
    "data_conflict": 0.3,
    "processing_error": 0.5,
    "unknown": 0.5,
}

# The background noise: how often each kind shows up among failures of a healthy dependency.
NOISE_MIX: Mapping[str, float] = {
    "timeout": 0.20,
    "network": 0.20,
    "temporary": 0.18,
    "rate_limit": 0.10,
    "auth": 0.05,
    "processing_error": 0.08,
    "unknown": 0.07,
    "not_found": 0.05,
    "data_conflict": 0.04,
    "permission": 0.03,
}
PERMANENT_NOISE = frozenset({"not_found", "data_conflict", "permission"})
PERMANENT_PROCESSING_SHARE = 0.5  # a malformed record stays malformed; a truncated read does not
OUTAGE_KINDS = (REFUSED, "temporary", "timeout")
EXPLICIT_PERMANENT = ("not_found", "not_found", "not_found", "permission", "permission")
DEATHS_PER_DEPENDENCY = 3
POISON_CHUNKS = 1  # in the first dependency: a chunk that kills its worker on every call


# --- the fault stream --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Window:
    """[start_s, end_s) during which every call to the dependency fails with `failure`."""

    start_s: float
    end_s: float
    failure: str

    def covers(self, t: float) -> bool:
        return self.start_s <= t < self.end_s


@dataclass(frozen=True, slots=True)
class ChunkScript:
    """The outcome of each call that reaches the healthy dependency; the last one repeats."""

    seq: int
    calls: tuple[str, ...]
    ok_s: float = 1.0

    def outcome(self, call: int) -> str:
        return self.calls[min(max(call, 1), len(self.calls)) - 1]

    @property
    def doomed(self) -> bool:
        """The chunk can never complete: its last (repeating) outcome is a failure."""
        return self.calls[-1] != OK


@dataclass(frozen=True, slots=True)
class DependencyStream:
    name: str
    slots: int
    chunks: tuple[ChunkScript, ...]
    outage: Window | None = None
    rate_limit: Window | None = None


@dataclass(frozen=True, slots=True)
class FaultStream:
    seed: int | None
    dependencies: tuple[DependencyStream, ...]

    def to_json(self) -> str:
        def window(w: Window | None) -> Any:
            return None if w is None else [w.start_s, w.end_s, w.failure]

        data = {
            "format": STREAM_FORMAT,
            "seed": self.seed,
            "dependencies": [
                {
                    "name": d.name,
                    "slots": d.slots,
                    "outage": window(d.outage),
                    "rate_limit": window(d.rate_limit),
                    "chunks": [[c.seq, c.ok_s, list(c.calls)] for c in d.chunks],
                }
                for d in self.dependencies
            ],
        }
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> FaultStream:
        data = json.loads(text)
        if data.get("format") != STREAM_FORMAT:
            raise ValueError(f"not a chunksync fault stream (format {STREAM_FORMAT})")

        def window(w: Any) -> Window | None:
            return None if w is None else Window(float(w[0]), float(w[1]), str(w[2]))

        deps = tuple(
            DependencyStream(
                name=str(d["name"]),
                slots=int(d["slots"]),
                chunks=tuple(
                    ChunkScript(int(c[0]), tuple(str(x) for x in c[2]), float(c[1]))
                    for c in d["chunks"]
                ),
                outage=window(d["outage"]),
                rate_limit=window(d["rate_limit"]),
            )
            for d in data["dependencies"]
        )
        return cls(data.get("seed"), deps)


def _noise_script(rng: random.Random) -> list[str]:
    kinds, weights = zip(*NOISE_MIX.items(), strict=True)
    calls: list[str] = []
    while rng.random() < NOISE_RATE:
        kind = rng.choices(kinds, weights)[0]
        if kind == "rate_limit":
            kind = f"rate_limit:{rng.randint(1, 5)}"
        calls.append(kind)
        permanent = kind in PERMANENT_NOISE or (
            kind == "processing_error" and rng.random() < PERMANENT_PROCESSING_SHARE
        )
        if permanent:
            return calls  # the last entry repeats: this chunk fails this way for good
    calls.append(OK)
    return calls


def generate_stream(
    seed: int = DEFAULT_SEED,
    *,
    dependencies: int = DEFAULT_DEPENDENCIES,
    chunks: int = DEFAULT_CHUNKS_PER_DEPENDENCY,
    slots: int = DEFAULT_SLOTS,
) -> FaultStream:
    """A seeded fault stream. Per dependency: a rate-limit window of 30-90 s starting at 60-120 s,
    then 180-300 s of clean traffic, then an outage of 2-8 minutes (connection refused, 503, or a
    hung host whose calls time out, in turn); 3% background noise; 3 permanent 404s and 2 403s;
    3 worker deaths; and in the first dependency one chunk that kills its worker every time."""
    rng = random.Random(seed)
    deps: list[DependencyStream] = []
    for i in range(dependencies):
        scripts = [_noise_script(rng) for _ in range(chunks)]
        extra = len(EXPLICIT_PERMANENT) + DEATHS_PER_DEPENDENCY + (POISON_CHUNKS if i == 0 else 0)
        picked = rng.sample(range(chunks), min(extra, chunks))
        for n, kind in zip(picked, EXPLICIT_PERMANENT, strict=False):
            scripts[n] = [kind]
        deaths = picked[len(EXPLICIT_PERMANENT) : len(EXPLICIT_PERMANENT) + DEATHS_PER_DEPENDENCY]
        for n in deaths:
            scripts[n] = [DIE, *scripts[n]]
        for n in picked[len(EXPLICIT_PERMANENT) + DEATHS_PER_DEPENDENCY :]:
            scripts[n] = [DIE]
        rl_start = rng.uniform(60.0, 120.0)
        rl_end = rl_start + rng.uniform(30.0, 90.0)
        out_start = rl_end + rng.uniform(180.0, 300.0)
        out_end = out_start + rng.uniform(120.0, 480.0)
        deps.append(
            DependencyStream(
                name=f"dep{i + 1}",
                slots=slots,
                chunks=tuple(
                    ChunkScript(n + 1, tuple(s), round(rng.uniform(0.5, 1.5), 3))
                    for n, s in enumerate(scripts)
                ),
                outage=Window(
                    round(out_start, 3), round(out_end, 3), OUTAGE_KINDS[i % len(OUTAGE_KINDS)]
                ),
                rate_limit=Window(round(rl_start, 3), round(rl_end, 3), "rate_limit"),
            )
        )
    return FaultStream(seed, tuple(deps))


# --- real exceptions ---------------------------------------------------------------------------


def make_exception(kind: str) -> Exception:
    """The exception a real client raises for an outcome of the stream ("rate_limit:7" is a 429
    with Retry-After: 7): the demo source's, plus a refused connection. The simulation and the
    worker test both categorize these."""
    name, _, arg = kind.partition(":")
    if name == REFUSED:
        return ConnectionRefusedError(111, "Connection refused")
    try:
        if name == "rate_limit":
            return make_failure(name, retry_after_s=int(arg) if arg else None)
        return make_failure(name)
    except InvalidPayload:
        raise ValueError(f"unknown outcome '{kind}' in a fault stream") from None


def call_seconds(kind: str, ok_s: float) -> float:
    """How long a call with this outcome takes (a death comes halfway through the work)."""
    if kind == OK:
        return ok_s
    if kind == DIE:
        return ok_s / 2.0
    return CALL_SECONDS[kind.partition(":")[0]]
