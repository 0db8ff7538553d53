"""Which command lines start helper processes before the CLI's imports (processes.prestart)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from chunksync.commands.mail import EXTRA_PROCESS_MESSAGES, MESSAGES_PER_PROCESS, process_count
from chunksync.processes import helpers_wanted
from chunksync.sources.mail import PlannedFolder

CORES = os.cpu_count() or 1
BIG = min(CORES, EXTRA_PROCESS_MESSAGES // MESSAGES_PER_PROCESS)  # one per core, many messages


@pytest.mark.parametrize(
    ("argv", "wanted"),
    [
        (["sync", "imap://a@h/INBOX"], CORES - 1),
        (["--db", "sqlite:///x.db", "-v", "sync", "maildir:///m"], CORES - 1),
        (["--db=sqlite:///x.db", "sync", "mbox:///m", "--processes", "3"], 2),
        (["sync", "mbox:///m", "--processes=1"], 0),
        (["sync", "mbox:///m", "--processes", "4", "--concurrency", "2"], 1),
        (["sync", "mbox:///m", "--concurrency", "1"], 0),
        (["sync", "mbox:///m", "--processes", "many"], 0),  # the CLI says what is wrong
        (["sync", "--help"], 0),
        (["--db", "sync", "worker"], 0),  # a database named "sync" is no sync command
        (["worker", "--until-done"], 0),
        (["export", "sync"], 0),
        ([], 0),
    ],
)
def test_helpers_wanted(argv: list[str], wanted: int) -> None:
    assert helpers_wanted(argv) == max(0, wanted)


def test_the_sniffed_global_options_are_the_clis() -> None:
    """prestart reads the command line before the CLI exists: its list of global options that
    take a value must stay the CLI's own."""
    import typer.main

    from chunksync import cli
    from chunksync.processes import GLOBAL_OPTIONS_WITH_VALUES

    group = typer.main.get_command(cli.cli)
    with_values = {o for p in group.params if not getattr(p, "is_flag", False) for o in p.opts}
    assert set(GLOBAL_OPTIONS_WITH_VALUES) == with_values


def test_chunksync_s_own_processes_are_tuned_and_no_other() -> None:
    """`tune_interpreter` (the `chunksync` command runs it first, a sync's helpers too) hands
    the GIL over every 0.5 ms and collects the youngest objects less often; importing the
    package changes neither (a program using the library keeps its interpreter as it set it)."""
    import subprocess
    import sys

    show = "import gc, sys; print(sys.getswitchinterval(), gc.get_threshold()[0])"
    tuned = "from chunksync.processes import tune_interpreter; tune_interpreter(); " + show
    plain = "import chunksync.app, chunksync.processes; " + show
    run = [sys.executable, "-c"]
    assert subprocess.check_output([*run, tuned], text=True).split() == ["0.0005", "10000"]
    assert subprocess.check_output([*run, plain], text=True).split() == ["0.005", "700"]


def test_a_command_line_builds_its_own_command_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI a command line runs holds the one command it names, built as the whole CLI
    builds it (the same options, the same help); no command, a name that is none of ours and
    shell completion get the whole CLI."""
    import typer.main

    from chunksync import cli

    whole = typer.main.get_command(cli.cli)
    assert isinstance(whole, typer.main.TyperGroup)
    assert len(whole.commands) > 20
    for name, command in whole.commands.items():
        one = typer.main.get_command(cli.only_the_command(cli.cli, name))
        assert isinstance(one, typer.main.TyperGroup)
        assert list(one.commands) == [name]
        assert one.params == [] or [p.opts for p in one.params] == [p.opts for p in whole.params]
        built = one.commands[name]
        assert [p.opts for p in built.params] == [p.opts for p in command.params], name
        assert built.help == command.help, name
    for name in (None, "synk", "--help"):
        assert cli.only_the_command(cli.cli, name) is cli.cli
    monkeypatch.setenv("_CHUNKSYNC_COMPLETE", "bash_complete")
    assert cli.only_the_command(cli.cli, "sync") is cli.cli


def test_the_garbage_left_at_exit_is_still_finalized(tmp_path: Path) -> None:
    """A tuned process ends without the collector's passes over its modules, but the garbage
    it leaves at exit is collected as before: an object dropped in a reference cycle still
    has its finalizer run (a freeze alone would have kept it, never finalized)."""
    import subprocess
    import sys

    path = tmp_path / "finalized.txt"
    code = (
        "from chunksync.processes import tune_interpreter; tune_interpreter()\n"
        "class Holder:\n"
        "    def __del__(self):\n"
        f"        with open({str(path)!r}, 'w') as f: f.write('finalized')\n"
        "h = Holder(); h.me = h\n"
        "del h\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    assert path.read_text() == "finalized"


def planned(*messages: int) -> list[PlannedFolder]:
    return [PlannedFolder(f"imap://a@h/F{n}", f"q{n}", None, m, 0) for n, m in enumerate(messages)]


@pytest.mark.parametrize(
    ("requested", "folders", "cap", "network", "count"),
    [
        (None, planned(100), 4, True, 1),  # not worth a helper's start
        (None, planned(EXTRA_PROCESS_MESSAGES - 1), None, False, BIG),
        (None, planned(EXTRA_PROCESS_MESSAGES - 1), 100, True, BIG),
        (
            None,
            planned(EXTRA_PROCESS_MESSAGES // 2, EXTRA_PROCESS_MESSAGES // 2),
            100,
            True,
            BIG + 1,
        ),
        (None, planned(EXTRA_PROCESS_MESSAGES), None, False, BIG),  # a local source: the cores
        (None, planned(EXTRA_PROCESS_MESSAGES), 1, True, 1),  # never past the connection cap
        (2, planned(EXTRA_PROCESS_MESSAGES), 100, True, 2),  # as asked
    ],
)
def test_process_count(
    requested: int | None, folders: list[PlannedFolder], cap: int | None, network: bool, count: int
) -> None:
    assert process_count(requested, folders, cap, network=network) == count


def test_an_unchanged_folder_counts_for_no_process() -> None:
    unchanged = PlannedFolder("imap://a@h/Big", None, None, 10 * EXTRA_PROCESS_MESSAGES, 0)
    assert process_count(None, [unchanged, *planned(100)], 100, network=True) == 1
