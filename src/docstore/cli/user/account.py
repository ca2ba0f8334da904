"""`docstore login`, `logout`, `whoami`."""

from __future__ import annotations

import sys
from contextlib import suppress
from typing import TYPE_CHECKING, Annotated

import typer

from docstore.cli import credentials
from docstore.cli.user.common import (
    ACCOUNT,
    EPILOG,
    JsonOpt,
    commands,
    connect,
    emit_json,
    err,
    human,
    out,
    table,
)

if TYPE_CHECKING:
    pass


# -- account ----------------------------------------------------------------------------------


@commands.command(rich_help_panel=ACCOUNT, epilog=EPILOG)
def login(
    url: Annotated[
        str | None, typer.Option(help="Server address (asked for when not given).")
    ] = None,
    email: Annotated[str | None, typer.Option(help="Account email (asked for).")] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from stdin (scripts).")
    ] = False,
) -> None:
    """Sign in and save the token in the user config directory (mode 0600).

    DOCSTORE_URL and DOCSTORE_TOKEN, when set, override the saved login.

    Example: docstore login --url https://docs.example.com --email ann@example.com
    """
    from docstore.client import DocstoreClient

    saved = credentials.load()
    url = url or typer.prompt("Server URL", default=saved.url, err=True)
    email = email or typer.prompt("Email", default=saved.email or None, err=True)
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("Password", hide_input=True, err=True)
    with DocstoreClient(url) as ds:
        token = ds.login(email, password)
    path = credentials.save(url, token.token, token.user.email)
    err.print(f"Logged in to {url} as {token.user.email}; token saved in {path} (mode 0600).")


@commands.command(rich_help_panel=ACCOUNT, epilog=EPILOG)
def logout() -> None:
    """Revoke the saved token and forget it.

    Example: docstore logout
    """
    creds = credentials.load()
    if creds.token:
        from docstore.client import DocstoreClient, Unauthenticated

        # An expired or revoked token: forgetting it is all that is left to do.
        with DocstoreClient(creds.url, creds.token) as ds, suppress(Unauthenticated):
            ds.logout()
    credentials.clear()
    err.print("Logged out.")


@commands.command(rich_help_panel=ACCOUNT, epilog=EPILOG)
def whoami(as_json: JsonOpt = False) -> None:
    """Show the signed-in account, its plan and how much of the quota is used.

    Example: docstore whoami --json
    """
    with connect() as ds:
        me = ds.me()
    if as_json:
        emit_json({**me.model_dump(mode="json"), "url": ds.base_url})
        return
    out.print(
        table(
            f"{me.email} on {ds.base_url}",
            ["name", "plan", "used", "quota", "admin"],
            [[me.name, me.plan, human(me.used_bytes), human(me.quota_bytes), me.is_admin]],
        )
    )
