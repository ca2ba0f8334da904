"""What the everyday `docstore` commands share: the Typer group, consoles, the client
connection, path resolution and output helpers. The commands are one module per group
beside this one (account, files, transfer, sharing, trash).

They use `docstore.client` against the server saved by `docstore login` (or DOCSTORE_URL and
DOCSTORE_TOKEN). Paths like /projects/q1/plan.md are resolved through the API; `doc:ID` and
`folder:ID` name an item by id (for items others shared with you). Output is a table by
default and JSON with `--json`; errors map to the exit codes in `docstore.cli.exit_codes`.

`docstore.client` (httpx, its models) is imported inside the functions that use it, in
every module of this package: `docstore serve`, `migrate`, the worker and `--help` load
these modules to register the commands, and must not pay for the client at start-up.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from docstore.cli import credentials, exit_codes
from docstore.cli.exit_codes import CliError

if TYPE_CHECKING:
    from rich.progress import Progress

    from docstore.client import DocstoreClient, Node, Version
    from docstore.client.models import Id

EPILOG = exit_codes.HELP
FILES = "Files (over HTTP, after docstore login)"
SHARING = "Sharing and comments (over HTTP)"
ACCOUNT = "Account (over HTTP)"

commands = typer.Typer()

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON (for scripts).")]
_REF = re.compile(r"^(doc|folder):(\S+)$")
_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


# -- helpers ----------------------------------------------------------------------------------


def connect(*, login_required: bool = True) -> DocstoreClient:
    """A client for the saved (or DOCSTORE_URL/DOCSTORE_TOKEN) server and token."""
    from docstore.client import DocstoreClient

    creds = credentials.load()
    if login_required and not creds.token:
        raise CliError(
            "not logged in: run `docstore login` (or set DOCSTORE_URL and DOCSTORE_TOKEN)",
            exit_codes.AUTH,
        )
    return DocstoreClient(creds.url, creds.token)


def emit_json(value: Any) -> None:
    """Print a JSON document on stdout."""
    typer.echo(json.dumps(value, default=str, indent=2))


def human(n: int | None) -> str:
    """1536 → '1.5 KiB'."""
    if n is None:
        return ""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"  # pragma: no cover - unreachable


def files(n: int) -> str:
    """'1 file', '2 files'."""
    return f"{n} file" if n == 1 else f"{n} files"


def when(value: datetime | None) -> str:
    """A timestamp in local time, to the minute."""
    return value.astimezone().strftime("%Y-%m-%d %H:%M") if value else ""


def parse_expiry(value: str | None) -> datetime | None:
    """'7d', '12h', '30m', '2w' from now, or an ISO 8601 time."""
    if value is None:
        return None
    match = _DURATION.match(value)
    if match:
        delta = timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
        return datetime.now(UTC) + delta
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is neither a duration like 7d, 12h, 30m nor an ISO 8601 time"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def resolve(ds: DocstoreClient, path: str) -> Node:
    """A path in the caller's tree, or `doc:ID` / `folder:ID`."""
    from docstore.client import Node

    ref = _REF.match(path)
    if ref is None:
        try:
            return ds.resolve(path)
        except ValueError as exc:
            raise CliError(str(exc), exit_codes.USAGE) from None
    kind, ident = ref.groups()
    if kind == "doc":
        doc = ds.get_document(ident)
        return Node(
            kind="document",
            id=doc.id,
            name=doc.name,
            path=path,
            parent_id=doc.parent_folder_id,
            size_bytes=doc.size_bytes,
            current_version_id=doc.current_version.id if doc.current_version else None,
        )
    folder = ds.get_folder(ident)
    return Node(
        kind="folder", id=folder.id, name=folder.name, path=path, parent_id=folder.parent_id
    )


def document(ds: DocstoreClient, path: str) -> Node:
    """A path that must name a document."""
    node = resolve(ds, path)
    if node.kind != "document":
        raise CliError(f"{path} is a folder, not a document", exit_codes.USAGE)
    return node


def version_by_number(ds: DocstoreClient, doc_id: Id, number: int) -> Version:
    """The version with this number (as `docstore versions` shows them)."""
    for version in ds.iter_versions(doc_id):
        if version.version_number == number:
            return version
    raise CliError(f"there is no version {number}", exit_codes.NOT_FOUND)


def parent_and_name(path: str) -> tuple[str, str]:
    """'/a/b/c' → ('/a/b', 'c')."""
    pure = PurePosixPath("/" + path.strip("/"))
    if not pure.name:
        raise CliError("the root folder has no name", exit_codes.USAGE)
    return str(pure.parent), pure.name


@contextmanager
def progress_bars(enabled: bool = True) -> Iterator[Progress]:
    """Rich progress bars on stderr (drawn only when stderr is a terminal)."""
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        DownloadColumn(binary_units=True),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=err,
        disable=not enabled or not err.is_terminal,
    )
    with progress:
        yield progress


def table(title: str, columns: list[str], rows: list[list[Any]]) -> Table:
    """A rich table with these columns."""
    t = Table(title=title, title_justify="left")
    for col in columns:
        t.add_column(col, overflow="fold")
    for row in rows:
        t.add_row(*("" if v is None else str(v) for v in row))
    return t


def _nfc(name: str) -> str:
    import unicodedata

    return unicodedata.normalize("NFC", name)
