"""The config file: `chunksync.toml` in the working directory, else
`$XDG_CONFIG_HOME/chunksync/chunksync.toml` (`~/.config/...` when unset), or the file `--config`
(or `CHUNKSYNC_CONFIG`) names.

It holds what a person would otherwise repeat on every command line:

    database = "sqlite:///sync.db"        # as --db
    app = "myproject.sync:app"            # as --app
    policies = ["policies/slow.toml"]     # policy files registered on the app
    dependencies = ["limits.toml"]        # [dependencies."NAME"] files, as worker --deps

    [dashboard]                           # any option of `chunksync dashboard`
    port = 9000

    [worker]                              # any option of any command, by its long name
    handler-timeout = "10m"

Each setting yields to the same setting given as a flag or in the environment: flag > environment
> file > built-in default. The file is data read once, here; the CLI hands it down.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chunksync.exceptions import ConfigurationError
from chunksync.tomlfile import read_toml

CONFIG_FILE_NAME = "chunksync.toml"
CONFIG_ENV = "CHUNKSYNC_CONFIG"
TOP_LEVEL_KEYS = ("database", "app", "policies", "dependencies")


@dataclass(frozen=True)
class FileConfig:
    """What a config file says; `path` is None when no file was found."""

    path: Path | None = None
    database: str | None = None
    app: str | None = None
    policies: tuple[Path, ...] = ()
    dependencies: tuple[Path, ...] = ()
    commands: dict[str, dict[str, Any]] = field(default_factory=dict)

    def defaults(self) -> dict[str, dict[str, Any]]:
        """Click's `default_map`: each command's options by parameter name."""
        return {
            command: {key.replace("-", "_"): value for key, value in options.items()}
            for command, options in self.commands.items()
        }


def find_config(named: str | Path | None) -> Path | None:
    """The file named, else the first of ./chunksync.toml and the XDG one that exists."""
    if named:
        return Path(named)
    here = Path.cwd() / CONFIG_FILE_NAME
    if here.is_file():
        return here
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    xdg = Path(base) / "chunksync" / CONFIG_FILE_NAME
    return xdg if xdg.is_file() else None


def load_config(named: str | Path | None = None) -> FileConfig:
    """Read the config file (see the module docstring); no file found is an empty config, a
    file named but missing, or a mistake in it, is one sentence naming the file and the key."""
    path = find_config(named)
    if path is None:
        return FileConfig()
    data = read_toml(path, "config file")
    commands: dict[str, dict[str, Any]] = {}
    for key, value in data.items():
        if key in TOP_LEVEL_KEYS:
            continue
        if not isinstance(value, dict):
            raise ConfigurationError(
                f"config file {path}: unknown key '{key}'; valid keys are "
                f"{', '.join(TOP_LEVEL_KEYS)} and a [COMMAND] table of a command's options"
            )
        commands[key] = value
    return FileConfig(
        path=path,
        database=_text(data, "database", path),
        app=_text(data, "app", path),
        policies=_paths(data, "policies", path),
        dependencies=_paths(data, "dependencies", path),
        commands=commands,
    )


def _text(data: dict[str, Any], key: str, path: Path) -> str | None:
    value = data.get(key)
    if value is not None and not isinstance(value, str):
        raise ConfigurationError(f"config file {path}: '{key}' must be a string")
    return value


def _paths(data: dict[str, Any], key: str, path: Path) -> tuple[Path, ...]:
    """A list of files, relative to the config file's folder."""
    value = data.get(key, [])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigurationError(f"config file {path}: '{key}' must be a list of file names")
    return tuple(path.parent / Path(v).expanduser() for v in value)
