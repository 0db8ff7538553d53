"""`chunksync accounts` and `chunksync folders [ACCOUNT]`: what the message store holds.

Per account: its name (the URI it was synced as), folders, messages still on the server,
messages kept after the server deleted them, bytes, and the last sync; per folder the same, with
the count the server had at that sync. Read-only, and the database is never created by them.
"""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.table import Table

from chunksync.cli import Limit, ShowAll, cli, console, friendly, listed, open_app, say_more
from chunksync.store import MessageStore
from chunksync.store.accounts import account_summaries, folder_summaries, resolve_account


def _when(stamp: float | None) -> str:
    if stamp is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp))


@cli.command("accounts")
@friendly
def accounts_cmd(limit: Limit = None, show_all: ShowAll = False) -> None:
    """List the mail accounts the store holds, with counts and the last sync."""
    with open_app(create=False) as app:
        found = account_summaries(MessageStore(app.backend))
    if not found:
        console.print("the store holds no mail yet: run `chunksync sync URI`")
        return
    table = Table("account", "folders", "messages", "deleted on server", "MB", "last sync")
    shown = listed(found, limit, show_all)
    for a in shown:
        table.add_row(
            a.name,
            str(a.folders),
            str(a.stored),
            str(a.deleted),
            f"{a.bytes / 1e6:.1f}",
            _when(a.synced_at),
        )
    console.print(table)
    say_more(len(shown), len(found), "accounts", narrower="", json=False)


@cli.command("folders")
@friendly
def folders_cmd(
    account: Annotated[
        str | None, typer.Argument(help="Only this account (as `chunksync accounts` lists it).")
    ] = None,
    limit: Limit = None,
    show_all: ShowAll = False,
) -> None:
    """List the folders the store holds, with counts and the last sync."""
    with open_app(create=False) as app:
        store = MessageStore(app.backend)
        key = resolve_account(store, account) if account is not None else None
        found = folder_summaries(store, key)
    if not found:
        console.print("the store holds no mail yet: run `chunksync sync URI`")
        return
    table = Table(
        "account", "folder", "on server", "messages", "deleted on server", "MB", "last sync"
    )
    shown = listed(found, limit, show_all)
    for f in shown:
        table.add_row(
            f.origin or f.account,
            f.folder,
            str(f.on_server),
            str(f.stored),
            str(f.deleted),
            f"{f.bytes / 1e6:.1f}",
            _when(f.synced_at),
        )
    console.print(table)
    say_more(len(shown), len(found), "folders", narrower="ACCOUNT for one account's", json=False)
