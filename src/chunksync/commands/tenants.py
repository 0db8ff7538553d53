"""`chunksync tenants`: who shares the workers, by what weight, under which quotas.

`chunksync tenants` lists every tenant declared or owning a queue, with its weight, quotas and
chunks waiting and in flight; `tenants set ID --weight W --max-in-flight N --max-queued M`
declares one or changes it while workers run (`--max-in-flight none` removes a quota);
`tenants grant ROLE --tenant ID` binds a PostgreSQL role to one tenant under row-level
security, and `tenants token ID` makes a token that opens the dashboard and its API to that
tenant alone. Every change is audited.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from chunksync.cli import (
    Limit,
    ShowAll,
    cli,
    console,
    err,
    friendly,
    listed,
    open_app,
    print_json,
    say_more,
)
from chunksync.exceptions import ConfigurationError
from chunksync.interventions import OPERATOR
from chunksync.redact import redact
from chunksync.tenants import KEEP, Keep, TenantLoad, TenantPolicy, shown

tenants_cli = typer.Typer(
    help="Tenants sharing the workers: list them, set their weight and quotas.",
    invoke_without_command=True,
    no_args_is_help=False,
)
cli.add_typer(tenants_cli, name="tenants")


@tenants_cli.callback()
@friendly
def tenants_list(
    ctx: typer.Context,
    limit: Limit = None,
    show_all: ShowAll = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Every tenant: weight, quotas, chunks waiting and in flight (the busiest first)."""
    if ctx.invoked_subcommand is not None:
        return
    with open_app(create=False) as app:
        found = app.manager.tenants.all()
    if as_json:
        rows = [{**shown(t.policy), "pending": t.pending, "in_flight": t.in_flight} for t in found]
        print_json(rows[:limit])  # every one unless told
        return
    if not found:
        console.print("no tenants yet: a queue or `chunksync tenants set` makes one")
        return
    busiest = sorted(found, key=lambda t: (-(t.pending + t.in_flight), t.policy.id))
    first = listed(busiest, limit, show_all)
    console.print(_table(first))
    say_more(len(first), len(found), "tenants (the busiest first)", narrower="")


@tenants_cli.command("set")
@friendly
def tenants_set(
    tenant: Annotated[str, typer.Argument(help="The tenant's id.")],
    weight: Annotated[
        float | None, typer.Option(help="Its share of the workers against others' (default 1).")
    ] = None,
    max_in_flight: Annotated[
        str | None,
        typer.Option(help="Chunks processing at once across the fleet, or 'none'."),
    ] = None,
    max_queued: Annotated[
        str | None, typer.Option(help="Chunks waiting at most (more are refused), or 'none'.")
    ] = None,
    reason: Annotated[str, typer.Option(help="Why, for the audit log.")] = "manual change",
) -> None:
    """Declare a tenant or change its weight and quotas; running workers follow at once."""
    with open_app(create=False) as app:
        before = app.manager.tenants.get(tenant)
        after = app.manager.tenants.set(
            tenant,
            actor=OPERATOR,
            reason=reason,
            weight=weight,
            max_in_flight=_quota("max-in-flight", max_in_flight),
            max_queued=_quota("max-queued", max_queued),
        )
    say(f"tenant {tenant}: {_described(before)} -> {_described(after)}")


@tenants_cli.command("grant")
@friendly
def tenants_grant(
    role: Annotated[str, typer.Argument(help="An existing PostgreSQL role.")],
    tenant: Annotated[str, typer.Option("--tenant", help="The one tenant it may see.")],
    reason: Annotated[str, typer.Option(help="Why, for the audit log.")] = "manual change",
) -> None:
    """Bind a PostgreSQL role to one tenant: under row-level security it reads that tenant's
    queues, chunks and attempts and may update or delete them; every other row is absent."""
    with open_app(create=False) as app:
        app.manager.tenants.grant_role(role, tenant, actor=OPERATOR, reason=reason)
    say(f"role {role} sees tenant {tenant} only")


@tenants_cli.command("token")
@friendly
def tenants_token(
    tenant: Annotated[str, typer.Argument(help="The tenant the token opens.")],
    revoke: Annotated[
        bool, typer.Option("--revoke", help="Revoke every token of the tenant instead.")
    ] = False,
    reason: Annotated[str, typer.Option(help="Why, for the audit log.")] = "manual change",
) -> None:
    """A new token that opens the dashboard and its API to one tenant (PostgreSQL), printed
    once: only its SHA-256 is kept. `--revoke` ends every token of the tenant."""
    with open_app(create=False) as app:
        tenants = app.manager.tenants
        if revoke:
            n = tenants.revoke_tokens(tenant, actor=OPERATOR, reason=reason)
            say(f"tenant {tenant}: {n} token(s) revoked")
            return
        token = tenants.new_token(tenant, actor=OPERATOR, reason=reason)
    err_say(f"a token for tenant {tenant} (shown once: keep it as you keep a password)")
    print(token, flush=True)


def _quota(option: str, text: str | None) -> int | Keep | None:
    """An option's value: not given keeps the quota, 'none' removes it, else a count."""
    if text is None:
        return KEEP
    if text.strip().lower() in ("none", "off", "-"):
        return None
    try:
        return int(text)
    except ValueError:
        raise ConfigurationError(
            f"--{option} takes a whole number of chunks or 'none', not '{text}'"
        ) from None


def _described(policy: TenantPolicy) -> str:
    def q(value: int | None) -> str:
        return "-" if value is None else str(value)

    return (
        f"weight {policy.weight:g}, max in flight {q(policy.max_in_flight)}, "
        f"max queued {q(policy.max_queued)}"
    )


def _table(found: list[TenantLoad]) -> Table:
    table = Table("tenant", "weight", "max in flight", "max queued", "pending", "in flight")
    for t in found:
        p = t.policy
        table.add_row(
            redact(p.id) + ("" if p.declared else " (defaults)"),
            f"{p.weight:g}",
            "-" if p.max_in_flight is None else str(p.max_in_flight),
            "-" if p.max_queued is None else str(p.max_queued),
            str(t.pending),
            str(t.in_flight),
        )
    return table


def say(text: str) -> None:
    console.print(redact(text), markup=False, highlight=False, soft_wrap=True)


def err_say(text: str) -> None:
    err.print(redact(text), markup=False, highlight=False, soft_wrap=True)
