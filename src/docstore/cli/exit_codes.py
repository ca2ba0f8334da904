"""Exit codes by kind of failure, the same for the user commands (HTTP) and the admin commands.

Scripts branch on these, so they are part of the command's interface (see README).
"""

from __future__ import annotations

import sys
from typing import Any

import typer
from typer.core import TyperGroup

OK = 0
ERROR = 1  # anything else: server or storage trouble, a failed transfer, a bad request
USAGE = 2  # wrong arguments or options, or a value the server finds invalid
NOT_FOUND = 3  # no such file, folder, version, user or share; an expired link
CONFLICT = 4  # the name is taken, a version conflict, a move into itself
QUOTA = 5  # the owner's quota would be exceeded
AUTH = 6  # not logged in, a bad or expired token, or not permitted

HELP = (
    "Exit codes: 0 ok, 1 error, 2 usage (bad arguments or invalid value), 3 not found, "
    "4 conflict, 5 quota exceeded, 6 not logged in or not permitted."
)

_BY_CODE = {
    "validation_error": USAGE,
    "not_found": NOT_FOUND,
    "link_expired": NOT_FOUND,
    "conflict": CONFLICT,
    "name_conflict": CONFLICT,
    "version_conflict": CONFLICT,
    "merge_conflict": CONFLICT,
    "cycle": CONFLICT,
    "quota_exceeded": QUOTA,
    "unauthenticated": AUTH,
    "forbidden": AUTH,
    "link_password_required": AUTH,
    "link_password_invalid": AUTH,
}


_BY_STATUS = {401: AUTH, 403: AUTH, 404: NOT_FOUND, 409: CONFLICT, 410: NOT_FOUND, 507: QUOTA}


def for_code(code: str, status: int = 0) -> int:
    """The exit code for an API problem code (or, for a code not listed, its HTTP status)."""
    return _BY_CODE.get(code) or _BY_STATUS.get(status, ERROR)


class CliError(Exception):
    """A failure the command explains itself: message on stderr, then this exit code."""

    def __init__(self, message: str, exit_code: int = ERROR) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def _report(message: str) -> None:
    from rich.console import Console
    from rich.markup import escape

    Console(stderr=True, soft_wrap=True).print(f"[bold red]error:[/] {escape(message)}")


class ExitCodeGroup(TyperGroup):
    """The `docstore` command group: maps errors to exit codes instead of tracebacks."""

    def invoke(self, ctx: Any) -> Any:
        from docstore.client.errors import DocstoreError as ClientError
        from docstore.errors import DocstoreError as DomainError

        try:
            return super().invoke(ctx)
        except CliError as exc:
            _report(str(exc))
            sys.stdout.flush()
            raise typer.Exit(exc.exit_code) from None
        except ClientError as exc:  # over HTTP: the problem JSON's code
            _report(str(exc))
            raise typer.Exit(for_code(exc.code, exc.status)) from None
        except DomainError as exc:  # admin commands on the database: the same codes
            _report(f"{exc.detail} ({exc.code})")
            raise typer.Exit(for_code(exc.code, exc.status)) from None
