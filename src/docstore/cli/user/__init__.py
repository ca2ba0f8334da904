"""The everyday `docstore` commands, one module per group (see `common`)."""

from __future__ import annotations

import typer

from docstore.cli import exit_codes
from docstore.cli.user.common import EPILOG, commands


def register(app: typer.Typer) -> None:
    """Add the user commands to `app`; errors then exit with the documented codes."""
    # Importing a group registers its commands on `commands`, in the order help shows them.
    from docstore.cli.user import (  # noqa: F401 - registers
        account,
        changes,
        files,
        search,
        sharing,
        sync,
        tokens,
        trash,
    )

    app.add_typer(commands)
    app.info.cls = exit_codes.ExitCodeGroup
    app.info.epilog = EPILOG
