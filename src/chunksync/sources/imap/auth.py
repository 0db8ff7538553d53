"""Where an IMAP secret comes from: an environment variable, a file, a command (like mbsync's
PassCmd), or an OAuth2 access token printed by a command (XOAUTH2). Never from a stored URI.

Every secret read is registered with `redact.add_secret`, so it never reaches a log, an error
message or the database. Commands run without a shell when they are a single word list.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

from chunksync.exceptions import ConfigurationError
from chunksync.redact import add_secret

COMMAND_TIMEOUT_SECONDS = 30.0
ENV_PREFIX = "CHUNKSYNC_IMAP_"  # CHUNKSYNC_IMAP_PASSWORD_ENV, ..._PASSWORD_FILE, ..._PASSWORD_CMD


@dataclass(frozen=True, slots=True)
class Secret:
    kind: str  # "password" or "oauth2"
    value: str


@dataclass(frozen=True, slots=True)
class Credentials:
    """One way of getting the secret of an account; exactly one field is set."""

    password_env: str | None = None
    password_file: str | None = None
    password_cmd: str | None = None
    oauth2_cmd: str | None = None

    def __post_init__(self) -> None:
        given = [f for f in self.fields() if f is not None]
        if len(given) > 1:
            raise ConfigurationError(
                "give one of --password-env, --password-file, --password-cmd or --oauth2-cmd"
            )

    def fields(self) -> tuple[str | None, ...]:
        return (self.password_env, self.password_file, self.password_cmd, self.oauth2_cmd)

    @property
    def given(self) -> bool:
        return any(f is not None for f in self.fields())

    @classmethod
    def from_environment(cls) -> Credentials:
        """What a separate `chunksync worker` uses: CHUNKSYNC_IMAP_PASSWORD_ENV (the name of the
        variable holding the password), CHUNKSYNC_IMAP_PASSWORD_FILE, ..._PASSWORD_CMD,
        ..._OAUTH2_CMD."""
        get = os.environ.get
        return cls(
            password_env=get(ENV_PREFIX + "PASSWORD_ENV"),
            password_file=get(ENV_PREFIX + "PASSWORD_FILE"),
            password_cmd=get(ENV_PREFIX + "PASSWORD_CMD"),
            oauth2_cmd=get(ENV_PREFIX + "OAUTH2_CMD"),
        )

    def secret(self, account: str) -> Secret:
        """Read the secret now; a missing one is one clear sentence."""
        if self.password_env is not None:
            value = os.environ.get(self.password_env)
            if not value:
                raise ConfigurationError(
                    f"no password for {account}: the environment variable "
                    f"{self.password_env} is not set"
                )
            return _registered("password", value)
        if self.password_file is not None:
            try:
                text = Path(self.password_file).expanduser().read_text(encoding="utf-8")
            except OSError as exc:
                raise ConfigurationError(
                    f"cannot read the password file {self.password_file}: {exc.strerror}"
                ) from None
            return _registered("password", text.rstrip("\r\n"))
        if self.password_cmd is not None:
            return _registered("password", run_command(self.password_cmd, "password"))
        if self.oauth2_cmd is not None:
            return _registered("oauth2", run_command(self.oauth2_cmd, "OAuth2 token"))
        raise ConfigurationError(
            f"no password for {account}: give --password-env, --password-file, --password-cmd "
            "or --oauth2-cmd"
        )


def _registered(kind: str, value: str) -> Secret:
    if not value:
        raise ConfigurationError(f"the {kind} is empty")
    add_secret(value)
    return Secret(kind, value)


def run_command(command: str, what: str) -> str:
    """The first line a command prints (its stderr is not kept: it may echo the secret)."""
    try:
        done = subprocess.run(
            shlex.split(command),
            capture_output=True,
            timeout=COMMAND_TIMEOUT_SECONDS,
            check=False,
        )
    except (OSError, ValueError, subprocess.TimeoutExpired) as exc:
        raise ConfigurationError(
            f"the {what} command could not run: {type(exc).__name__}"
        ) from None
    lines = done.stdout.decode("utf-8", "replace").splitlines()
    value = lines[0].strip() if lines else ""
    if value:
        add_secret(value)
    if done.returncode != 0 or not value:
        raise ConfigurationError(
            f"the {what} command failed (exit status {done.returncode}) or printed nothing"
        )
    return value
