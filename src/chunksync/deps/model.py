"""Dependency limits as declared (Python or TOML) and a dependency's shared state, as plain data.

Limits: `connections` (chunks of the dependency in flight at once, fleet-wide, each holding one
slot under its lease; handlers take more with `ctx.slot()`), `rate` (calls per period, for the
fleet, taken in the claim: a batch takes as many as it has chunks; handlers that spend per-call
units take them with `ctx.take(units)`) and `burst` (how many may go at once after a quiet spell).
Names may be patterns (`imap://*@imap.gmail.com`): the most specific declaration wins.
"""

from __future__ import annotations

import fnmatch
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from chunksync.exceptions import ConfigurationError

_PERIODS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_RATE = re.compile(
    r"^\s*(\d+(?:\.\d+)?)\s*/\s*(\d+(?:\.\d+)?)?\s*(s|sec|second|m|min|minute|h|hour|d|day)s?\s*$",
    re.IGNORECASE,
)
LIMIT_KEYS = ("connections", "rate", "burst")


@dataclass(frozen=True, slots=True)
class Rate:
    """`units` per `period_s` seconds: "250/s", "10000/10m", "5/min"."""

    units: float
    period_s: float

    @property
    def per_s(self) -> float:
        return self.units / self.period_s

    def __str__(self) -> str:
        for unit, seconds in (("d", 86400.0), ("h", 3600.0), ("m", 60.0)):
            if self.period_s >= seconds and self.period_s % seconds == 0:
                n = self.period_s / seconds
                return f"{self.units:g}/{'' if n == 1 else f'{n:g}'}{unit}"
        return f"{self.units:g}/{'' if self.period_s == 1 else f'{self.period_s:g}'}s"


def parse_rate(text: object) -> Rate:
    """A rate from its text; anything else is one clear sentence."""
    found = _RATE.match(text) if isinstance(text, str) else None
    if found is None:
        raise ConfigurationError(
            f"rate {text!r} is not a rate: write calls per period, like '250/s', '10000/10m' "
            "or '5/min'"
        )
    units, count, unit = float(found[1]), float(found[2] or 1), found[3][0].lower()
    period = count * _PERIODS[unit]
    if units <= 0 or period <= 0 or not math.isfinite(units / period):
        raise ConfigurationError(f"rate {text!r} must allow more than 0 calls per period")
    return Rate(units, period)


@dataclass(frozen=True, slots=True)
class Limits:
    """What a dependency allows the whole fleet. None: no limit of that kind."""

    connections: int | None = None
    rate: Rate | None = None
    burst: int | None = None

    @property
    def any(self) -> bool:
        """Whether the dependency is limited (a burst alone limits nothing). Each backend's
        plain claim and `deps_special`, and PostgreSQL's `chunksync_claim_group()`, say the
        same in SQL: tests/contract/test_dependency_limited.py holds them together."""
        return self.connections is not None or self.rate is not None

    def burst_units(self) -> float:
        """The GCRA burst: as declared, else a hundredth of a second's worth (at least 1), so a
        1-second window never sees much more than the rate."""
        if self.burst is not None:
            return float(self.burst)
        return max(1.0, self.rate.per_s / 100.0) if self.rate is not None else 1.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "connections": self.connections,
            "rate": None if self.rate is None else str(self.rate),
            "burst": self.burst,
        }


def _whole(value: object, key: str, where: str, *, minimum: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigurationError(
            f"{key} of dependency {where} must be a whole number of at least {minimum}, "
            f"not {value!r}"
        )
    return value


def limits_from(values: Mapping[str, Any], where: str) -> Limits:
    """Limits from a mapping (a TOML table or CLI options); unknown keys are an error."""
    unknown = sorted(set(values) - set(LIMIT_KEYS))
    if unknown:
        raise ConfigurationError(
            f"unknown key(s) {', '.join(unknown)} for dependency {where}: "
            f"known are {', '.join(LIMIT_KEYS)}"
        )
    rate = values.get("rate")
    return Limits(
        connections=_whole(values.get("connections"), "connections", where, minimum=1),
        rate=None if rate is None else parse_rate(rate),
        burst=_whole(values.get("burst"), "burst", where, minimum=1),
    )


def merge(base: Limits, values: Mapping[str, Any], where: str) -> Limits:
    """`base` with the keys given in `values` replaced (a key given as None is cleared)."""
    given = limits_from({k: v for k, v in values.items() if v is not None}, where)
    changes = {k: getattr(given, k) for k in LIMIT_KEYS if k in values}
    return replace(base, **changes)


def specificity(pattern: str) -> tuple[int, int]:
    """How specific a name or pattern is: exact names first, then the most literal characters."""
    wild = any(ch in pattern for ch in "*?[")
    return (0 if wild else 1, sum(ch not in "*?[]" for ch in pattern))


def limits_for(name: str, declared: Mapping[str, Limits]) -> tuple[str, Limits] | None:
    """The declaration that applies to dependency `name`: its own, or the most specific pattern
    that matches it."""
    if name in declared:
        return name, declared[name]
    matches = [p for p in declared if fnmatch.fnmatchcase(name, p)]
    if not matches:
        return None
    best = max(matches, key=specificity)
    return best, declared[best]


def dependencies_from(data: Mapping[str, Any], where: str) -> dict[str, Limits]:
    """The `[dependencies."NAME"]` tables of a TOML document (policies' or the config file)."""
    tables = data.get("dependencies", {})
    if not isinstance(tables, Mapping):
        raise ConfigurationError(f"[dependencies] in {where} must be a table of tables")
    out = {}
    for name, values in tables.items():
        if not isinstance(values, Mapping):
            raise ConfigurationError(f'[dependencies."{name}"] in {where} must be a table')
        out[str(name)] = limits_from(values, f'"{name}" in {where}')
    return out
