"""Reading a TOML file the user named (a policy, dependency limits): one sentence per mistake."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from chunksync.exceptions import ConfigurationError


def read_toml(path: str | Path, what: str) -> dict[str, Any]:
    """The parsed file; a missing, unreadable or malformed one is a ConfigurationError naming
    `what` it was for ("policy file", "dependencies file") and the path."""
    p = Path(path)
    try:
        return tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigurationError(f"{what} {p} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"cannot read {what} {p}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"{what} {p} is not valid TOML: {exc}") from None
