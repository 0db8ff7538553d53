"""What a fetch chunk still has to fetch: its UID set less what it stored (`uid_set_minus`), and
where a retry resumes (`resume_set`), from a checkpoint of this release or of 0.1."""

from __future__ import annotations

import random

import pytest

from chunksync.sources.imap.diff import MAX_UID, uid_set, uid_set_minus
from chunksync.sources.imap.source import resume_set


def expand(spec: str) -> set[int]:
    out: set[int] = set()
    for part in filter(None, spec.split(",")):
        lo, _, hi = part.partition(":")
        a, b = int(lo), int(hi or lo)
        out.update(range(min(a, b), max(a, b) + 1))
    return out


@pytest.mark.parametrize(
    ("spec", "done", "after", "left"),
    [
        ("1:10", [3, 4, 10], 0, "1:2,5:9"),
        ("1:10", [], 5, "6:10"),
        ("1:3", [1, 2, 3], 0, ""),
        ("10:1", [5], 0, "1:4,6:10"),  # a range may be written high to low
        ("1:5,3:8", [4], 0, "1:3,5:8"),  # overlapping ranges merge
        ("7", [7], 0, ""),
        ("5,1:3,8:*", [2], 1, f"3,5,8:{MAX_UID}"),
        ("", [1], 0, ""),
        ("1:4294967295", [1, MAX_UID], 0, f"2:{MAX_UID - 1}"),  # wide: no list of every UID
    ],
)
def test_uid_set_minus(spec: str, done: list[int], after: int, left: str) -> None:
    assert uid_set_minus(spec, done, after=after) == left


def test_uid_set_minus_agrees_with_sets() -> None:
    rng = random.Random(7)
    for _ in range(300):
        uids = rng.sample(range(1, 200), rng.randint(1, 40))
        spec = uid_set(uids)
        done = rng.sample(range(1, 210), rng.randint(0, 30))
        after = rng.choice([0, 0, rng.randint(1, 200)])
        want = {u for u in expand(spec) if u > after} - set(done)
        assert expand(uid_set_minus(spec, done, after=after)) == want


def test_a_retry_resumes_from_what_its_checkpoint_says_is_left() -> None:
    assert resume_set("1:500", None) == ("1:500", False)
    assert resume_set("1:500", {"left": "301:500"}) == ("301:500", True)
    assert resume_set("1:500", {"left": "1:500"}) == ("1:500", True)  # a part of no body
    assert resume_set("1:500", {"left": ""}) == ("", True)  # all stored: nothing to fetch
    assert resume_set("1:500", {"done_through": 200}) == ("201:500", True)  # as 0.1 wrote it
    assert resume_set("1:500", {"done_through": 0}) == ("1:500", False)
    assert resume_set("1:500", {"unrelated": 1}) == ("1:500", False)
