"""One way to write a duration everywhere a person types one: `45s`, `15m`, `12h`, `30d`, `2w`.

A number may have a fraction (`1.5h`) and, bare, is read in the unit the option names (seconds
for `--lease`, days for `cleanup --older-than`), so every existing command line keeps working.
The CLI's options, `sla`, retention and the config file all read durations here, so a unit that
works in one place works in all of them.
"""

from __future__ import annotations

import re

from chunksync.exceptions import ConfigurationError

__all__ = ["UNIT_SECONDS", "format_duration", "parse_duration"]

UNIT_SECONDS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 7 * 86400.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([smhdw]?)\s*$", re.IGNORECASE)


def parse_duration(text: str | float, *, bare: str = "s", what: str = "duration") -> float:
    """`text` in seconds; a bare number is in the unit `bare`. A mistake is one sentence that
    names `what` was being read and shows the syntax."""
    if isinstance(text, bool):
        raise ConfigurationError(
            f"cannot read the {what} {text!r}: write e.g. 45s, 15m, 12h or 30d"
        )
    if isinstance(text, int | float):
        return float(text) * UNIT_SECONDS[bare]
    match = _DURATION.match(text)
    if not match and text.strip().startswith("-"):
        raise ConfigurationError(f"the {what} '{text.strip()}' is negative: it must be positive")
    if not match:
        raise ConfigurationError(
            f"cannot read the {what} '{text}': write a number with a unit of s, m, h, d or w "
            "(e.g. 45s, 15m, 12h, 30d)"
        )
    unit = (match.group(2) or bare).lower()
    return float(match.group(1)) * UNIT_SECONDS[unit]


def format_duration(seconds: float) -> str:
    """The largest whole unit that states `seconds` exactly (`900` -> `15m`), else seconds."""
    for unit in ("w", "d", "h", "m"):
        size = UNIT_SECONDS[unit]
        if seconds >= size and float(seconds / size).is_integer():
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"
