"""`docstore audit …`: verify the seal chain, print its head, export, seal and prune, on the
configured database and audit key (no server needed)."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console

from docstore.config import get_settings

if TYPE_CHECKING:
    from docstore.audit.keys import Signer
    from docstore.db import Database

app = typer.Typer(help="Audit log: verify, head, export, seal, prune.", no_args_is_help=True)
console = Console()
err_console = Console(stderr=True)


class Format(StrEnum):
    """Export formats."""

    jsonl = "jsonl"
    csv = "csv"


def _database() -> Database:
    """The configured database, migrated. Audit commands need nothing else (no blob store,
    no app), so they start fast and work while storage is down."""
    from docstore import migrate
    from docstore.db import Database

    settings = get_settings()
    if settings.database_url is None:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    database = Database(settings.resolved_database_url)
    migrate.upgrade(database.engine)
    return database


def _signer(database: Database) -> Signer:
    """The audit key and anchor of the configuration (what the server seals with)."""
    from docstore.audit.keys import Signer
    from docstore.audit.sealing import adopt_legacy

    signer = Signer.from_settings(get_settings())
    adopt_legacy(database, signer)
    return signer


def _head(value: str | None) -> tuple[int, str] | None:
    """An `ID:SEAL` as `docstore audit head` prints it."""
    if value is None:
        return None
    entry_id, _, seal = value.strip().lstrip("#").partition(":")
    seal = seal.strip().lower()
    if not entry_id.isdigit() or len(seal) != 64 or any(c not in "0123456789abcdef" for c in seal):
        raise typer.BadParameter(f"{value!r} is not ID:SEAL", param_hint="--expect")
    return int(entry_id), seal


def _when(value: str | None, option: str) -> datetime | None:
    """A date or an RFC 3339 time; without an offset it is UTC."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a date or time", param_hint=option) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


@app.command()
def verify(
    anchor: bool = typer.Option(
        False, "--anchor", help="Also check every head the anchor recorded is still there."
    ),
    expect: str | None = typer.Option(
        None, "--expect", metavar="ID:SEAL", help="Also check this head (from `audit head`)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Check the whole seal chain: exit 1 at the first tampered entry, 0 if intact.

    Names the first entry that was edited, deleted, reordered, inserted or resealed without
    the audit key, and checkpoints not signed with it. With --anchor (or --expect), entries
    deleted from the end and rewrites are found too. Entries not sealed yet are reported
    as pending.

    Example: docstore audit verify --anchor
    """
    from docstore.audit.verification import verify as verify_chain

    expected = _head(expect)
    database = _database()
    try:
        verdict = verify_chain(database, _signer(database), anchor=anchor, expect=expected)
    finally:
        database.dispose()
    if as_json:
        typer.echo(json.dumps(verdict.as_dict(), indent=2))
    elif verdict.ok:
        cp = f", after the checkpoint at #{verdict.checkpoint_id}" if verdict.checkpoint_id else ""
        console.print(
            f"[green]audit log intact[/]: {verdict.checked} entries verified{cp}; "
            f"{verdict.pending} pending sealing"
        )
        if verdict.head_seal:
            console.print(f"head: #{verdict.head_id} seal {verdict.head_seal}")
        if verdict.legacy_through:
            console.print(
                f"entries up to #{verdict.legacy_through} carry the unkeyed seals of before "
                "the audit key (vouched for by a signed checkpoint)"
            )
        if verdict.pending_first_id is not None:
            console.print(
                f"not sealed yet (not tamper-evident until sealed): #{verdict.pending_first_id}"
                f" onwards, the first written {verdict.pending_since}"
            )
        if anchor:
            console.print(
                f"anchor: {verdict.anchored} heads checked, newest #{verdict.anchored_head_id}"
            )
        if expect and verdict.expect_checked:
            console.print(f"expected head {expect} found")
        elif expect:
            console.print(f"expected head {expect} was pruned since: it cannot be checked")
    else:
        console.print(
            f"[red]audit log broken at entry #{verdict.first_broken_id}[/] "
            f"({verdict.problem}): {verdict.reason}"
        )
        console.print(f"{verdict.checked} entries verified before it")
    if verdict.anchor_invalid_lines:
        err_console.print(
            f"warning: {verdict.anchor_invalid_lines} anchor line(s) not signed with the "
            "audit key were ignored"
        )
    raise typer.Exit(0 if verdict.ok else 1)


@app.command()
def head(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Print the newest sealed entry as ID:SEAL, to write down outside the database.

    Later, `docstore audit verify --expect ID:SEAL` checks the log still reaches it.

    Example: docstore audit head
    """
    from docstore.audit.sealing import chain_tail

    database = _database()
    try:
        _signer(database)  # the key exists from now on, as for the server
        with database.transaction() as db:
            head_id, seal = chain_tail(db)
    finally:
        database.dispose()
    if as_json:
        typer.echo(json.dumps({"id": head_id, "seal": seal}))
    else:
        typer.echo(f"{head_id}:{seal}")


@app.command()
def export(
    since: str | None = typer.Option(None, help="From this date/time (inclusive, UTC)."),
    until: str | None = typer.Option(None, help="Up to this date/time (exclusive, UTC)."),
    fmt: Format = typer.Option(Format.jsonl, "--format", help="jsonl or csv."),
    output: Path | None = typer.Option(None, "--output", "-o", help="File (default stdout)."),
) -> None:
    """Stream audit entries, oldest first, without loading them all into memory.

    Example: docstore audit export --since 2026-01-01 --format csv -o audit.csv
    """
    from docstore.audit.export import iter_entries, write_csv, write_jsonl

    start, end = _when(since, "--since"), _when(until, "--until")
    database = _database()
    writer = write_csv if fmt == Format.csv else write_jsonl
    try:
        entries = iter_entries(database, since=start, until=end)
        if output is None:
            count = writer(entries, sys.stdout)
        else:
            with output.open("w", newline="" if fmt == Format.csv else None) as f:
                count = writer(entries, f)
    finally:
        database.dispose()
    err_console.print(f"exported {count} entries")


@app.command()
def seal(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Chain every committed entry now (the worker does it every few seconds).

    Example: docstore audit seal
    """
    from docstore.audit.sealing import seal_until_done

    database = _database()
    try:
        sealed = seal_until_done(database, _signer(database))
    finally:
        database.dispose()
    if as_json:
        typer.echo(json.dumps({"sealed": sealed}))
    else:
        console.print(f"sealed {sealed} entries")


@app.command()
def prune(
    days: int | None = typer.Option(
        None, min=0, help="Keep this many days (default: DOCSTORE_AUDIT_RETENTION_DAYS)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Delete sealed entries older than the retention, leaving a checkpoint.

    The rest of the log still verifies. The worker does this hourly when
    DOCSTORE_AUDIT_RETENTION_DAYS is set.

    Example: docstore audit prune --days 365
    """
    from docstore.audit.sealing import prune as prune_log

    days = days if days is not None else get_settings().audit_retention_days
    if days is None:
        err_console.print("no retention: pass --days or set DOCSTORE_AUDIT_RETENTION_DAYS")
        raise typer.Exit(2)
    database = _database()
    try:
        result = prune_log(database, _signer(database), days)
    finally:
        database.dispose()
    if as_json:
        typer.echo(json.dumps(result))
    else:
        console.print(f"pruned {result['pruned']} entries older than {days} days")
