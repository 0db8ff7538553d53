"""The previous release kept in the tree (tests/upgrade/, for the rolling-upgrade test) is the
tagged release's code, file for file, wherever this clone has the tag's commit."""

from __future__ import annotations

import io
import subprocess
import tarfile

from tests.chaos.harness import ROOT
from tests.chaos.upgrade import ARCHIVE, PREVIOUS, PREVIOUS_COMMIT


def _git(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, timeout=60)


def _files(data: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        return {
            m.name: archive.extractfile(m).read()  # type: ignore[union-attr]
            for m in archive.getmembers()
            if m.isfile()
        }


def test_the_kept_previous_release_is_the_tagged_code() -> None:
    kept = _files(ARCHIVE.read_bytes())
    assert f"chunksync-{PREVIOUS}/src/chunksync/__init__.py" in kept
    if _git("cat-file", "-e", f"{PREVIOUS_COMMIT}^{{commit}}").returncode != 0:
        # A clone without that history (shallow, or no git at all) has only the archive.
        shallow = _git("rev-parse", "--is-shallow-repository")
        assert shallow.returncode != 0 or shallow.stdout.strip() == b"true"
        return
    tagged = _git(
        "archive", "--format=tar", f"--prefix=chunksync-{PREVIOUS}/", PREVIOUS_COMMIT,
        "src/chunksync",
    )  # fmt: skip
    assert tagged.returncode == 0, tagged.stderr
    assert kept == _files(tagged.stdout)
