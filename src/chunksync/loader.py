"""Load a user's App (for their handlers and policies) from `module:attribute`, and declare
dependencies' limits from a TOML file's `[dependencies."NAME"]` tables."""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

from chunksync.app import App
from chunksync.deps.model import Limits
from chunksync.deps.operate import load_dependencies as read_dependencies
from chunksync.exceptions import ConfigurationError


def load_app(spec: str, db_url: str) -> App:
    """`pkg.module:app` (an App) or `pkg.module:make_app` (called with the database URL)."""
    module_name, _, attribute = spec.partition(":")
    if not module_name:
        raise ConfigurationError(f"--app '{spec}' should look like package.module:app")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigurationError(f"cannot import '{module_name}' for --app: {exc}") from None
    found = getattr(module, attribute or "app", None)
    if isinstance(found, App):
        return found
    if callable(found):
        made = found(db_url)
        if isinstance(made, App):
            return made
    raise ConfigurationError(f"'{spec}' is neither an App nor a function returning one")


def load_dependencies(app: App, path: str | Path) -> dict[str, Limits]:
    """Declare on `app` every `[dependencies."NAME"]` table of a TOML file (a policy file may
    hold them beside its policy), as `App.dependency` would: names and patterns alike."""
    declared = read_dependencies(path)
    for name, limits in declared.items():
        app.dependency(name, connections=limits.connections, rate=limits.rate, burst=limits.burst)
    return declared
