"""What a new user hits in the first hour, through the real `chunksync` command: the database
it looked for, ids as `status` prints them, one duration syntax, the config file, warnings that
used to be silence, and answers that used to mislead."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

from chunksync.app import App
from chunksync.models import ChunkStatus

ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+00:00$")


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHUNKSYNC_")}
    env.pop("XDG_CONFIG_HOME", None)
    return {**env, "COLUMNS": "200", **extra}


def run(
    *args: str,
    expect: int = 0,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    stdin: str | None = None,
) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "chunksync", *args]
    proc = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=cwd,
        env=env or clean_env(),
        input=stdin,
    )
    assert proc.returncode == expect, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stdout + proc.stderr
    return proc


def one_error(proc: subprocess.CompletedProcess[str]) -> str:
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    return lines[0]


def demo(url: str, chunks: int = 40) -> None:
    run("--db", url, "demo", "--chunks", str(chunks), "--seed", "5", "--crashes", "0")


def test_a_missing_database_names_what_was_looked_for_and_how_to_name_one(
    tmp_path: Path,
) -> None:
    said = one_error(run("status", cwd=tmp_path, expect=1))
    assert f"no database at {tmp_path / 'chunksync.db'}" in said and "from the default" in said
    assert "--db" in said and "CHUNKSYNC_DB" in said and "chunksync.toml" in said
    assert not (tmp_path / "chunksync.db").exists()  # looking created nothing
    env = clean_env(CHUNKSYNC_DB=f"sqlite:///{tmp_path / 'other.db'}")
    assert "from CHUNKSYNC_DB" in one_error(run("status", cwd=tmp_path, env=env, expect=1))


def test_the_config_file_and_its_precedence(tmp_path: Path) -> None:
    file_db, env_db, flag_db = (f"sqlite:///{tmp_path / n}.db" for n in ("file", "env", "flag"))
    for url in (file_db, env_db, flag_db):
        run("--db", url, "init")
    with App(file_db) as app:
        app.create_queue("demo://x", [{}], name="from-file")
    with App(env_db) as app:
        app.create_queue("demo://x", [{}], name="from-env")
    (tmp_path / "chunksync.toml").write_text(
        f'database = "{file_db}"\n[pause]\nreason = "paused by the config file"\n',
        encoding="utf-8",
    )

    def names(*args: str, env: dict[str, str] | None = None) -> list[str]:
        out = run(*args, "status", "--json", cwd=tmp_path, env=env).stdout
        return [q["name"] for q in json.loads(out)]

    assert names() == ["from-file"]  # file > default
    env = clean_env(CHUNKSYNC_DB=env_db)
    assert names(env=env) == ["from-env"]  # environment > file
    assert names("--db", flag_db, env=env) == []  # flag > environment
    run("pause", "from-file", cwd=tmp_path)  # a [COMMAND] table gives that command's defaults
    with App(file_db) as app:
        assert app.manager.list_audit()[0].reason == "paused by the config file"
    # The XDG location, and --config naming a file anywhere.
    xdg = tmp_path / "xdg"
    (xdg / "chunksync").mkdir(parents=True)
    (xdg / "chunksync" / "chunksync.toml").write_text(f'database = "{env_db}"\n', "utf-8")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert names(env=clean_env(XDG_CONFIG_HOME=str(xdg))) == ["from-file"]  # ./ first
    out = run("status", "--json", cwd=elsewhere, env=clean_env(XDG_CONFIG_HOME=str(xdg))).stdout
    assert [q["name"] for q in json.loads(out)] == ["from-env"]
    cfg = run("--config", str(tmp_path / "chunksync.toml"), "status", "--json", cwd=elsewhere)
    assert [q["name"] for q in json.loads(cfg.stdout)] == ["from-file"]


def test_a_typo_in_the_config_file_is_one_sentence(tmp_path: Path) -> None:
    config = tmp_path / "chunksync.toml"
    config.write_text("[dashboard]\nprot = 9000\n", encoding="utf-8")
    said = one_error(run("status", cwd=tmp_path, expect=1))
    assert str(config) in said and "[dashboard]" in said and "'prot'" in said and "port" in said
    config.write_text("[dashbaord]\nport = 9000\n", encoding="utf-8")
    assert "[dashbaord] names no command" in one_error(run("status", cwd=tmp_path, expect=1))


def test_version_and_shell_completion(tmp_path: Path) -> None:
    from chunksync import __version__

    assert run("--version").stdout.strip() == f"chunksync {__version__}"
    helped = run("--help").stdout
    assert "--install-completion" in helped and "--show-completion" in helped
    assert "--config" in helped


def test_ids_as_status_prints_them(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'sync.db'}"
    demo(url, chunks=60)
    [queue] = json.loads(run("--db", url, "status", "--json").stdout)
    short = queue["id"][:8]
    assert short in run("--db", url, "status").stdout
    dead = json.loads(run("--db", url, "chunks", "--status", "dead", "--json").stdout)
    # A chunk's id starts with the time it was made (chunksync.ids): the shortest prefix that
    # no other chunk's id shares.
    others = [c["id"] for c in json.loads(run("--db", url, "chunks", "--json").stdout)]
    others.remove(dead[0]["id"])
    size = next(n for n in range(8, 37) if not any(o.startswith(dead[0]["id"][:n]) for o in others))
    assert "again" in run("--db", url, "retry", dead[0]["id"][:size]).stdout
    with App(url) as app:
        assert app.manager.get_chunk(dead[0]["id"]).status is ChunkStatus.PENDING
    assert "is paused" in run("--db", url, "pause", short).stdout
    assert "already paused" in run("--db", url, "pause", short).stdout  # exit 0, says so
    run("--db", url, "resume", short)
    ids = [c["id"] for c in json.loads(run("--db", url, "chunks", "--json").stdout)]
    common, n = Counter(i[0] for i in ids).most_common(1)[0]
    assert n > 1
    said = one_error(run("--db", url, "cancel", common, expect=1))
    assert f"'{common}' is the start of" in said and "type more of one" in said
    assert "more than 20 chunk ids" in said  # all 60 share it: read up to 21, not counted
    hint = one_error(run("--db", url, "cancel", queue["name"], expect=1))
    assert "did you mean --queue?" in hint


def worker_says(url: str) -> tuple[str, str]:
    """A `chunksync worker` started on `url`: the first line it writes on stderr, and the rest
    once a SIGTERM has stopped it."""
    cmd = [sys.executable, "-m", "chunksync", "--db", url, "worker", "--poll", "0.1"]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=clean_env()
    )
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
    finally:
        proc.send_signal(signal.SIGTERM)
        _, rest = proc.communicate(timeout=60)
    return line, rest


def test_a_worker_without_a_handler_for_its_queues_says_so(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'sync.db'}"
    with App(url) as app:

        @app.handler("pages")
        def fetch(ctx: object) -> int:
            return 1

        app.create_queue("pages://api.example.com", [{"page": 1}], name="pages")
    line, _ = worker_says(url)
    assert "no handler for queue pages (source kind 'pages')" in line
    assert "this worker has handlers for" in line and "--app" in line


def test_redaction_keeps_the_advice_and_help_keeps_its_brackets(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'sync.db'}"
    said = run("--db", url, "sync", "imaps://alice:pw1234@127.0.0.1:1/INBOX", expect=1).stderr
    assert "remove it and use --password-env" in said and "pw1234" not in said
    assert "[health]" in run("dashboard", "--help").stdout


def test_handler_timeout_from_the_cli_and_heartbeats_do_not_extend_it(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'sync.db'}"
    (tmp_path / "slowapp.py").write_text(
        "import time\n"
        "from chunksync import App\n"
        f"app = App({url!r})\n"
        "@app.handler('slow')\n"
        "def slow(ctx):\n"
        "    for _ in range(100):\n"
        "        ctx.heartbeat()\n"
        "        time.sleep(0.1)\n"
        "    return 1\n",
        encoding="utf-8",
    )
    run("--db", url, "init")
    with App(url) as app:
        app.register_source(_slow_source())
        queue = app.create_queue("slow://x", [{}], max_attempts=1)
    assert "--handler-timeout" in run("worker", "--help").stdout
    run(
        "--db", url, "--app", "slowapp:app", "worker", "--until-done",
        "--handler-timeout", "1s", "--poll", "0.1", cwd=tmp_path,
    )  # fmt: skip
    with App(url) as app:
        [chunk] = app.manager.list_chunks(queue.id)
    assert chunk.status is ChunkStatus.DEAD and chunk.last_category == "timeout"


def _slow_source() -> object:
    from chunksync.sources.base import FunctionSource

    return FunctionSource("slow", lambda ctx: 1)


def test_unknown_policy_keys_are_one_sentence(tmp_path: Path) -> None:
    bad = tmp_path / "gentle.toml"
    bad.write_text("[stress]\nbogus = 3\n", encoding="utf-8")
    said = one_error(run("bench-policy", "--policy", str(bad), expect=1))
    assert str(bad) in said and "[stress]" in said and "'bogus'" in said
    assert "max_probe_deferrals" in said and "__init__" not in said


def test_releasing_a_live_workers_chunk_needs_force(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'sync.db'}"
    with App(url) as app:
        app.create_queue("demo://x", [{}])
        app.manager.register_worker("w-busy", "host", 1, 1)
        _, [chunk] = app.manager.claim("w-busy", ["demo"], limit=1, lease_s=3600.0)
    said = one_error(run("--db", url, "release", chunk.id, expect=1))
    assert "w-busy" in said and "is alive" in said and "--force" in said
    run("--db", url, "release", chunk.id[:8], "--force")
    with App(url) as app:
        assert app.manager.get_chunk(chunk.id).status is ChunkStatus.PENDING


def test_one_duration_syntax(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'sync.db'}"
    demo(url, chunks=5)
    [queue] = json.loads(run("--db", url, "status", "--json").stdout)
    assert "SLA 15m" in run("--db", url, "sla", queue["name"], "15m").stdout
    assert "SLA 2h" in run("--db", url, "sla", queue["name"], "7200").stdout  # bare: seconds
    bad = run("--db", url, "sla", queue["name"], "soon", expect=2)
    assert "s, m, h, d or w" in bad.stderr
    run("--db", url, "cleanup", "--older-than", "2w")
    run("--db", url, "recover", "--worker-timeout", "1m")
    assert "s, m, h, d or w" in run("--db", url, "worker", "--lease", "1y", expect=2).stderr


def test_cancelled_progress_alert_text_and_json_times(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'sync.db'}"
    demo(url, chunks=40)
    [queue] = json.loads(run("--db", url, "status", "--json").stdout)
    assert ISO_UTC.match(queue["created_at"]) and ISO_UTC.match(queue["updated_at"])
    dead = json.loads(run("--db", url, "chunks", "--status", "dead", "--json").stdout)
    assert len(dead) >= 2
    fired = run("--db", url, "alerts", "--evaluate", "--json").stdout
    [before] = [a for a in json.loads(fired) if a["rule"] == "dead_chunks"]
    assert f"has {len(dead)} dead" in before["message"] and ISO_UTC.match(before["fired_at"])
    run("--db", url, "retry", dead[0]["id"])
    again = json.loads(run("--db", url, "alerts", "--evaluate", "--json").stdout)
    [after] = [a for a in again if a["rule"] == "dead_chunks"]
    assert f"has {len(dead) - 1} dead" in after["message"]  # the text follows the count
    run("--db", url, "cancel", queue["id"][:8], "--queue")
    table = run("--db", url, "status").stdout
    assert "100%" not in table and "cancelled," in table


def test_an_evaluation_posts_each_change_to_the_webhook_once(tmp_path: Path) -> None:
    """`alerts --evaluate --webhook` posted each change twice: once itself, once on the
    evaluation's own thread, with two event ids a receiver could not tell apart."""
    from tests.servers.webhook_receiver import webhook_receiver

    url = f"sqlite:///{tmp_path / 'sync.db'}"
    demo(url, chunks=40)
    with webhook_receiver() as receiver:
        said = run("--db", url, "alerts", "--evaluate", "--webhook", receiver.url).stdout
        fired = [ln for ln in said.splitlines() if ln.startswith("firing: ")]
        assert fired, said
        posted = receiver.events("alert")
        assert sorted(e["key"] for e in posted) == sorted(ln.split(": ")[1] for ln in fired)
        assert len({e["eventId"] for e in posted}) == len(posted)


def test_rates_read_as_numbers() -> None:
    from chunksync.commands.output import rate, span

    assert rate(73626.859) == "73,627" and rate(12.3456) == "12.3" and rate(None) == "-"
    assert span(250) == "4m 10s" and span(7500) == "2h 5m"


def test_the_quickstart_app_module_is_loadable_and_the_script_enqueues(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    readme = (root / "README.md").read_text(encoding="utf-8")
    for name in ("sync_app.py", "enqueue.py"):
        example = (root / "examples" / "quickstart" / name).read_text(encoding="utf-8")
        assert f"```python\n{example}```" in readme  # README shows the files as they are
        (tmp_path / name).write_text(example, encoding="utf-8")
    env = clean_env(CHUNKSYNC_DB="sqlite:///sync.db", PYTHONPATH=os.environ.get("PYTHONPATH", ""))
    run("init", cwd=tmp_path, env=env)
    out = run("--app", "sync_app:app", "status", "--json", cwd=tmp_path, env=env).stdout
    assert json.loads(out) == []  # importing the app module did no work
    script = subprocess.run(
        [sys.executable, "enqueue.py"], cwd=tmp_path, env=env, timeout=120, check=False
    )
    assert script.returncode == 0
    [queue] = json.loads(run("status", "--json", cwd=tmp_path, env=env).stdout)
    assert queue["status"] == "completed" and queue["totals"]["completed"] == 100
