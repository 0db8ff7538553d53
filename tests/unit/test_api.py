from __future__ import annotations

import subprocess
import sys

import pytest

import chunksync


def test_public_api_is_exactly_all() -> None:
    for name in chunksync.__all__:
        assert getattr(chunksync, name) is not None, name  # lazy: imported on first use
    public = {n for n in vars(chunksync) if not n.startswith("_") and n != "annotations"}
    modules = {name for name in public if type(getattr(chunksync, name)).__name__ == "module"}
    helpers = {"importlib", "TYPE_CHECKING", "Any"}
    assert set(chunksync.__all__) - {"__version__"} == public - modules - helpers
    assert set(chunksync.__all__) <= set(dir(chunksync))


def test_public_api_is_sorted() -> None:
    assert chunksync.__all__ == sorted(chunksync.__all__, key=lambda n: (not n.isupper(), n))


def test_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        chunksync.Nope  # type: ignore[attr-defined]  # noqa: B018


def test_import_chunksync_imports_nothing_heavy() -> None:
    """The `chunksync` command starts a sync's helpers before its imports: the package itself
    must not pull in the engine, the database drivers or the CLI."""
    code = "import sys, chunksync; print(sorted(m for m in sys.modules if 'chunksync' in m))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['chunksync']"
