"""`chunksync dashboard`: the web dashboard (and /metrics) on loopback by default."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from chunksync.cli import cli, console, err, fail, friendly, open_app

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
DEFAULT_TOKEN_ENV = "CHUNKSYNC_DASHBOARD_TOKEN"


@cli.command()
@friendly
def dashboard(
    host: Annotated[
        str, typer.Option(help="Address to bind (loopback by default).")
    ] = DEFAULT_HOST,
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port.")] = DEFAULT_PORT,
    token_env: Annotated[
        str,
        typer.Option(
            "--token-env",
            help="Environment variable holding the operator token; unset means read-only.",
        ),
    ] = DEFAULT_TOKEN_ENV,
    health_config: Annotated[
        Path | None,
        typer.Option("--health-config", help="TOML file with the \\[health] thresholds."),
    ] = None,
    session_idle: Annotated[
        str, typer.Option("--session-idle", help="A sign-in ends after this long unused.")
    ] = "30m",
    session_max: Annotated[
        str, typer.Option("--session-max", help="A sign-in ends this long after it began.")
    ] = "12h",
    private: Annotated[
        bool,
        typer.Option(
            "--private", help="Show nothing without a token (the operator's or a tenant's)."
        ),
    ] = False,
) -> None:
    """Serve the dashboard: health, queues, chunks, charts, actions, JSON API, /metrics."""
    import uvicorn

    from chunksync.durations import parse_duration
    from chunksync.observe import health
    from chunksync.redact import add_secret
    from chunksync.web import create_app
    from chunksync.web.server import LOOPBACK_HOSTS
    from chunksync.web.sessions import SessionPolicy

    token = os.environ.get(token_env) or None
    if token is not None:
        if len(token) < 16:
            raise fail(f"the token in {token_env} is too short: use at least 16 characters")
        add_secret(token)
    idle = parse_duration(session_idle, what="--session-idle")
    longest = parse_duration(session_max, what="--session-max")
    if idle <= 0 or longest <= 0:
        raise fail("--session-idle and --session-max must be longer than 0 s")
    sessions = SessionPolicy(idle_s=idle, max_s=longest)
    if private and token is None:
        raise fail(
            f"--private needs the operator token (sessions are signed with it): set {token_env}"
        )
    loopback = host in LOOPBACK_HOSTS
    if not loopback and not private:
        err.print(f"[yellow]warning:[/] serving on {host}: anyone who can reach it can read it")
    with open_app(create=False) as app:
        if health_config is not None:
            app.configure(health=health.load_thresholds(health_config))
        if not private and app.manager.tenants.tokens_exist():
            err.print(
                "[yellow]warning:[/] tenants have tokens, but without --private a request "
                "with no token reads every tenant"
            )
        hosts = None if loopback else ["*"]
        web = create_app(app, token=token, allowed_hosts=hosts, sessions=sessions, private=private)
        mode = "actions need the token" if token else f"read-only (set {token_env} to act)"
        console.print(f"dashboard on http://{host}:{port}/ ({mode}); Ctrl-C stops it")
        uvicorn.run(web, host=host, port=port, log_level="warning")
