"""Schedules: a chunksync command run on a cron expression, once per tick for the whole fleet.

A schedule is a row: its name, its cron expression (five fields or @hourly and the like, read
in UTC), the command's arguments (what follows `chunksync`), and `next_at`, its next tick. The
maintenance leader's upkeep (chunksync.runtime.upkeep) looks every SCHEDULE_EVERY_SECONDS for
rows whose tick has come and takes each by moving `next_at` on from the value it read, in one
statement (a compare-and-set): should two processes both think they lead for a moment, only
one changes the row, so each tick runs once. The next tick is counted from *now*, not from the
missed one, so ticks missed while no worker ran are run once, at start, not once each.

The command runs as `python -m chunksync ARGS` in a child process with the worker's database
(CHUNKSYNC_DB) and app (CHUNKSYNC_APP): a schedule is what an operator would type, and a slow
or failing command never holds the upkeep thread. Adding, removing and each run are audited.
Whoever may write this table may have the workers run chunksync commands (and so whatever a
command runs, such as `sync --password-cmd`): it is as trusted as the database's credentials.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from chunksync.backends.base import Backend, Row, Session
from chunksync.exceptions import ConfigurationError, NotFound
from chunksync.manager import dump_json
from chunksync.redact import redact

log = logging.getLogger("chunksync.schedules")

SCHEDULE_EVERY_SECONDS = 1.0  # how often the leader looks for a schedule whose tick has come
OPERATOR = "operator"
SCHEDULER = "scheduler"
# Commands that never end by themselves: scheduled, each tick would start one more.
LONG_RUNNING = frozenset({"worker", "dashboard"})
_NAME = re.compile(r"[A-Za-z0-9][\w.-]{0,99}")


@dataclass(frozen=True, slots=True)
class Schedule:
    name: str
    cron: str
    command: tuple[str, ...]
    app: str | None
    next_at: float
    last_at: float | None
    last_status: str | None
    runs: int
    created_at: float

    @classmethod
    def from_row(cls, row: Row) -> Schedule:
        return cls(
            name=str(row["name"]),
            cron=str(row["cron"]),
            command=tuple(json.loads(row["command"])),
            app=row["app"],
            next_at=float(row["next_at"]),
            last_at=None if row["last_at"] is None else float(row["last_at"]),
            last_status=row["last_status"],
            runs=int(row["runs"]),
            created_at=float(row["created_at"]),
        )

    @property
    def shown_command(self) -> str:
        """The command as a user may see it: any secret in it redacted."""
        return redact(" ".join(self.command))

    def as_dict(self) -> dict[str, Any]:
        """The stable JSON shape of `schedule list --json`: ISO 8601 times in UTC."""
        return {
            "name": self.name,
            "cron": self.cron,
            "command": [redact(a) for a in self.command],
            "app": self.app,
            "next_at": iso(self.next_at),
            "last_at": None if self.last_at is None else iso(self.last_at),
            "last_status": self.last_status,
            "runs": self.runs,
        }


def iso(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).isoformat(timespec="seconds")


def next_tick(cron: str, after: float) -> float:
    """The first tick of `cron` (UTC) strictly after `after` (epoch seconds)."""
    # Imported when a schedule is read (10 ms): every CLI command's worker imports this module.
    from croniter import CroniterBadCronError, CroniterBadDateError, croniter

    try:
        return float(croniter(cron, datetime.fromtimestamp(after, UTC)).get_next(float))
    except (CroniterBadCronError, CroniterBadDateError, ValueError, KeyError) as exc:
        raise ConfigurationError(
            f"'{cron}' is not a cron expression (five fields such as '*/15 * * * *', or "
            f"@hourly, @daily, @weekly): {exc}"
        ) from None


def check(name: str, cron: str, command: Sequence[str]) -> None:
    """Refuse a schedule that could not run, in one sentence."""
    if not _NAME.fullmatch(name):
        raise ConfigurationError(
            f"schedule name '{name}' must be letters, digits, '.', '_' or '-' (up to 100)"
        )
    if not (cron.strip().startswith("@") or len(cron.split()) == 5):
        raise ConfigurationError(
            f"'{cron}' is not a cron expression: give five fields (minute hour day month "
            "weekday, such as '*/15 * * * *') or @hourly, @daily, @weekly, @monthly"
        )
    next_tick(cron, time.time())  # raises with croniter's reason for a field it refuses
    if not command:
        raise ConfigurationError("a schedule needs a command: give it after '--'")
    if command[0].startswith("-"):
        raise ConfigurationError(
            f"a schedule's command starts with the command's name, not '{command[0]}': it runs "
            "with the database (and --app) it was added with"
        )
    if command[0] in LONG_RUNNING:
        raise ConfigurationError(
            f"'{command[0]}' runs until stopped, so it cannot be scheduled: run it as a service"
        )


def add(
    backend: Backend,
    name: str,
    cron: str,
    command: Sequence[str],
    *,
    app: str | None = None,
    first_at: float | None = None,
) -> Schedule:
    """A new schedule, its first tick the cron's next (or `first_at`); audited."""
    check(name, cron, command)
    with backend.transaction() as s:
        clock = s.fetch_one("now")
        now = float(clock["now"]) if clock else time.time()
        next_at = next_tick(cron, now) if first_at is None else first_at
        params = {"name": name, "cron": cron, "command": dump_json(list(command), "command")}
        if not s.execute("schedule_add", {**params, "app": app, "next_at": next_at}):
            raise ConfigurationError(f"schedule '{name}' exists: remove it first")
        _audit(s, "schedule_add", OPERATOR, name, {"cron": cron, "next_at": iso(next_at)})
        return get(s, name)


def get(s: Session | Backend, name: str) -> Schedule:
    row = s.fetch_one("schedule_get", {"name": name})
    if row is None:
        raise NotFound(f"no schedule named '{name}' ('chunksync schedule list' shows them)")
    return Schedule.from_row(row)


def list_all(backend: Backend) -> list[Schedule]:
    return [Schedule.from_row(r) for r in backend.fetch_all("schedule_list")]


def remove(backend: Backend, name: str) -> Schedule:
    """Remove a schedule (a run under way finishes); audited."""
    with backend.transaction() as s:
        gone = get(s, name)
        s.execute("schedule_remove", {"name": name})
        _audit(s, "schedule_remove", OPERATOR, name, {"cron": gone.cron})
    return gone


def run_soon(backend: Backend, name: str) -> Schedule:
    """Make a schedule's next tick now: the leader runs it at its next look; audited."""
    with backend.transaction() as s:
        get(s, name)
        clock = s.fetch_one("now")
        now = float(clock["now"]) if clock else time.time()
        s.execute("schedule_set_next", {"name": name, "next_at": now})
        _audit(s, "schedule_run_soon", OPERATOR, name, {})
        return get(s, name)


def claim_due(backend: Backend) -> list[Schedule]:
    """Take every schedule whose tick has come, each moved on to its next tick after now (a
    missed tick runs once, however many were missed); what another process took first is left
    out. Each tick taken is audited in the statement's transaction."""
    taken = []
    for row in backend.fetch_all("schedules_due"):
        due = Schedule.from_row(row)
        now = float(row["now"])
        try:
            next_at = next_tick(due.cron, now)
        except ConfigurationError as exc:  # written by hand, perhaps: say so, keep the others
            log.error("schedule %s: %s", due.name, exc)
            continue
        with backend.transaction() as s:
            params = {"name": due.name, "was": due.next_at, "next_at": next_at}
            if s.execute("schedule_claim", params) != 1:
                continue
            missed = max(0, _ticks_between(due.cron, due.next_at, now) - 1)
            details = {"tick": iso(due.next_at), "next_at": iso(next_at), "missed": missed}
            _audit(s, "schedule_run", SCHEDULER, due.name, details)
        taken.append(due)
    return taken


def _ticks_between(cron: str, start: float, end: float, most: int = 1000) -> int:
    """How many ticks fell in [start, end] (counted up to `most`): for the audit entry."""
    from croniter import croniter

    it, n = croniter(cron, datetime.fromtimestamp(start - 1e-3, UTC)), 0
    while n < most and float(it.get_next(float)) <= end:
        n += 1
    return n


def launch(backend: Backend, schedule: Schedule, url: str) -> threading.Thread:
    """Run the schedule's command in a child process; a thread waits for it and records how it
    ended (`last_status`). Returns that thread."""
    env = {**os.environ, "CHUNKSYNC_DB": url}
    if schedule.app:
        env["CHUNKSYNC_APP"] = schedule.app
    argv = [sys.executable, "-m", "chunksync", *schedule.command]
    log.info("schedule %s: running chunksync %s", schedule.name, schedule.shown_command)

    def wait() -> None:
        try:
            done = subprocess.run(
                argv, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL
            )
            status = f"exit {done.returncode}"
            if done.returncode:
                last = (done.stderr.strip().splitlines() or [""])[-1]
                status += f": {redact(last)[:300]}"
        except OSError as exc:
            status = f"could not start: {exc}"
        if status != "exit 0":
            log.error("schedule %s: %s", schedule.name, status)
        try:
            backend.execute("schedule_result", {"name": schedule.name, "status": status})
        except Exception as exc:  # the row may be gone, or the database down: only logged
            log.error("schedule %s: cannot record its end: %s", schedule.name, redact(str(exc)))

    thread = threading.Thread(target=wait, name=f"schedule-{schedule.name}", daemon=True)
    thread.start()
    return thread


def _audit(s: Session, action: str, actor: str, name: str, details: dict[str, Any]) -> None:
    s.execute(
        "insert_audit",
        {
            "action": action,
            "actor": actor,
            "reason": f"schedule {name}",
            "chunk_id": None,
            "queue_id": None,
            "details": dump_json({"schedule": name, **details}, "detail"),
        },
    )
