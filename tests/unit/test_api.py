from __future__ import annotations

import chunksync


def test_public_api_is_exactly_all() -> None:
    public = {n for n in vars(chunksync) if not n.startswith("_") and n != "annotations"}
    modules = {name for name in public if type(getattr(chunksync, name)).__name__ == "module"}
    assert set(chunksync.__all__) - {"__version__"} == public - modules
    for name in chunksync.__all__:
        assert hasattr(chunksync, name), name


def test_public_api_is_sorted() -> None:
    assert chunksync.__all__ == sorted(chunksync.__all__, key=lambda n: (not n.isupper(), n))
