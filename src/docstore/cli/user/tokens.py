"""`docstore token create|ls|revoke`: app passwords (and the signed-in sessions) of the
logged-in account, over HTTP."""

from __future__ import annotations

from typing import Annotated

import typer

from docstore.cli.user.common import (
    ACCOUNT,
    EPILOG,
    JsonOpt,
    commands,
    connect,
    emit_json,
    err,
    out,
    table,
    when,
)

tokens = typer.Typer(
    help="App passwords: long-lived tokens for one device or app (WebDAV, scripts).",
    no_args_is_help=True,
)
commands.add_typer(tokens, name="token", rich_help_panel=ACCOUNT)


@tokens.command("create", epilog=EPILOG)
def create(
    name: Annotated[str, typer.Option("--name", help="What it is for: laptop, phone, backup.")],
    as_json: JsonOpt = False,
) -> None:
    """Make an app password and print it once (it cannot be shown again).

    It works as a Bearer token (DOCSTORE_TOKEN) and as the WebDAV password, until revoked.

    Example: docstore token create --name laptop
    """
    with connect() as ds:
        made = ds.create_app_password(name)
    if as_json:
        emit_json(made.model_dump(mode="json"))
        return
    out.print(made.token, highlight=False)
    err.print(
        f"App password {made.name!r} (id {made.id}) created. It is shown only this once; "
        f"revoke it with `docstore token revoke {made.id}`."
    )


@tokens.command("ls", epilog=EPILOG)
def ls(as_json: JsonOpt = False) -> None:
    """List the account's app passwords and signed-in sessions, with their last use.

    Example: docstore token ls
    """
    with connect() as ds:
        found = ds.sessions()
    if as_json:
        emit_json([s.model_dump(mode="json") for s in found])
        return
    rows = [
        [
            f"{s.id}{' *' if s.current else ''}",
            "app password" if s.kind == "app_password" else "session",
            s.name or "",
            s.user_agent or "",
            s.ip_address or "",
            when(s.created_at),
            when(s.last_used_at) or "never",
        ]
        for s in found
    ]
    columns = ["id", "kind", "name", "client", "address", "created", "last used"]
    out.print(table("Sessions and app passwords (* this one)", columns, rows))


@tokens.command("revoke", epilog=EPILOG)
def revoke(
    session_id: Annotated[int, typer.Argument(help="The id `docstore token ls` shows.")],
) -> None:
    """Revoke an app password or a session at once.

    Example: docstore token revoke 42
    """
    with connect() as ds:
        ds.revoke_session(session_id)
    err.print(f"Revoked {session_id}.")
