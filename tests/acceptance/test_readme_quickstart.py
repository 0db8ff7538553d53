"""README's quickstarts, run exactly as printed: the code blocks are read from README.md, so a
quickstart that stops working fails here, not for the next newcomer.

How a section's blocks are run, in a fresh directory (its working directory throughout):
- a Python block whose first line is a comment naming a file (`# sync_app.py: ...`) is written
  to that file; a named file no other block imports is a script, run with `python FILE` after
  it is written (`run_scripts`); any other Python block is a script, run in order;
- a shell block is run line by line with bash, `chunksync` being this checkout's; a line
  holding a placeholder for the reader (CHUNK_ID, QUEUE, `[--json]`, `/`-separated
  alternatives) is reference, not a step, and is skipped; a `worker` line without
  `--until-done` runs until stopped, so it gets TERM after WORKER_RUN_SECONDS and must then
  exit 0 (a graceful stop).
Every step must exit 0 without a traceback.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"
STEP_TIMEOUT_SECONDS = 300.0
WORKER_RUN_SECONDS = 8.0
_FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
_FILE_LINE = re.compile(r"#\s*(?:file:\s*)?([\w./-]+\.py)(?::.*)?$")
_PLACEHOLDER = re.compile(r"(?<![$\w])[A-Z][A-Z0-9_]{2,}(?![\w=])|\[--|\s/\s")

pytestmark = pytest.mark.timeout(900)


@dataclass(frozen=True)
class Block:
    language: str
    text: str


def section_blocks(title: str) -> list[Block]:
    """The fenced blocks under the `## {title}` heading, up to the next `## ` heading."""
    text = README.read_text(encoding="utf-8")
    start = text.index(f"## {title}\n")
    end = text.find("\n## ", start + 1)
    body = text[start : end if end != -1 else len(text)]
    return [Block(m.group(1), m.group(2)) for m in _FENCE.finditer(body)]


def is_reference(line: str) -> bool:
    """A line that shows the reader a form to fill in, not a step to run."""
    command = line.split(" #", 1)[0]
    return bool(_PLACEHOLDER.search(command))


def environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHUNKSYNC_")}
    src = str(Path(__file__).resolve().parents[2] / "src")
    env["PYTHONPATH"] = os.pathsep.join([src, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def check(proc: subprocess.CompletedProcess[str], step: str) -> None:
    said = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"README step failed ({proc.returncode}): {step}\n{said[-2000:]}"
    assert "Traceback" not in said, f"README step printed a traceback: {step}\n{said[-2000:]}"


def run_shell_line(line: str, cwd: Path, env: dict[str, str]) -> None:
    long_running = re.search(r"\bworker\b", line) and "--until-done" not in line
    if not long_running:
        proc = subprocess.run(
            ["bash", "-c", line], cwd=cwd, env=env, capture_output=True, text=True,
            timeout=STEP_TIMEOUT_SECONDS, check=False,
        )  # fmt: skip
        check(proc, line)
        return
    worker = subprocess.Popen(
        ["bash", "-c", f"exec {line}"], cwd=cwd, env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        out, err = worker.communicate(timeout=WORKER_RUN_SECONDS)
    except subprocess.TimeoutExpired:
        worker.send_signal(signal.SIGTERM)
        out, err = worker.communicate(timeout=STEP_TIMEOUT_SECONDS)
    check(subprocess.CompletedProcess(line, worker.returncode, out, err), line)


def imported_modules(blocks: list[Block]) -> set[str]:
    """The module names the Python blocks import (`from sync_app import app` -> sync_app)."""
    found = re.findall(r"^\s*(?:from|import)\s+([\w.]+)", "\n".join(b.text for b in blocks), re.M)
    return set(found)


def run_python(script: str, cwd: Path, env: dict[str, str], step: str) -> None:
    proc = subprocess.run(
        [sys.executable, script], cwd=cwd, env=env, capture_output=True,
        text=True, timeout=STEP_TIMEOUT_SECONDS, check=False,
    )  # fmt: skip
    check(proc, step)


def run_blocks(blocks: list[Block], cwd: Path, *, run_scripts: bool = True) -> list[str]:
    """Run a section's blocks as the module docstring says; returns the steps run."""
    env, steps = environment(), []
    modules = imported_modules([b for b in blocks if b.language == "python"])
    for n, block in enumerate(blocks):
        if block.language == "python":
            first = block.text.splitlines()[0] if block.text.strip() else ""
            named = _FILE_LINE.fullmatch(first.strip())
            if named:
                target = cwd / named.group(1)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(block.text, encoding="utf-8")
                if run_scripts and target.stem not in modules:
                    run_python(target.name, cwd, env, f"python {target.name}")
                    steps.append(f"python {target.name}")
                continue
            script = cwd / f"readme_block_{n}.py"
            script.write_text(block.text, encoding="utf-8")
            run_python(script.name, cwd, env, f"python block {n}")
            steps.append(f"python block {n}")
        elif block.language in ("sh", "bash", "console", "shell"):
            for line in block.text.splitlines():
                if line.strip() and not line.lstrip().startswith("#") and not is_reference(line):
                    run_shell_line(line, cwd, env)
                    steps.append(line)
    return steps


def test_reference_lines_are_told_from_steps() -> None:
    assert is_reference("chunksync retry CHUNK_ID               # or: retry QUEUE --queue")
    assert is_reference("chunksync health [--json]")
    assert is_reference("chunksync pause QUEUE / resume QUEUE")
    assert not is_reference("chunksync --db sqlite:///sync.db init")
    assert not is_reference("CHUNKSYNC_DB=sqlite:///sync.db chunksync status  # QUEUE")
    assert not is_reference('chunksync status --db "$DB"')


def test_the_python_quickstart_runs_as_printed(tmp_path: Path) -> None:
    blocks = section_blocks("Quickstart: Python")
    assert any(b.language == "python" for b in blocks)
    steps = run_blocks(blocks, tmp_path)
    assert steps, "the Python quickstart has nothing to run"


def test_the_command_line_quickstart_runs_as_printed(tmp_path: Path) -> None:
    python = [b for b in section_blocks("Quickstart: Python") if b.language == "python"]
    files = [b for b in python if _FILE_LINE.fullmatch(b.text.splitlines()[0].strip())]
    run_blocks(files, tmp_path, run_scripts=False)  # the app module a command may name with --app
    steps = run_blocks(section_blocks("Quickstart: command line"), tmp_path)
    assert len(steps) >= 3, steps
