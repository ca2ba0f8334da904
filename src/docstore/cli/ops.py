"""Operations commands: `docstore backup`, `docstore restore-backup`, `docstore status`.

Exit codes of backup and restore (for cron jobs; README "Operations"):
0 done; 1 failed (the previous backup stays the current one); 2 bad arguments;
3 a needed program (pg_dump, pg_restore) or the backup is missing; 4 another backup of the
destination is running, or restore refused to overwrite a live installation;
7 damage found: `--verify` found a missing or altered object, a referenced object is missing
from storage, or fsck found problems in the restored installation.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from docstore.config import get_settings

DAMAGED = 7
console = Console()


def _fail(exc: Exception, code: int) -> typer.Exit:
    Console(stderr=True).print(f"[bold red]error:[/] {exc}", markup=True, highlight=False)
    return typer.Exit(code)


def _rows(title: str, rows: dict[str, Any]) -> Table:
    table = Table(title=title, show_header=False)
    table.add_column("")
    table.add_column("", overflow="fold")
    for key, value in rows.items():
        number = isinstance(value, int) and not isinstance(value, bool)
        table.add_row(key.replace("_", " "), f"{value:,}" if number else str(value))
    return table


def backup(
    dest: Path = typer.Argument(..., help="Backup directory (created when missing)."),
    verify: bool = typer.Option(False, "--verify", help="Check the newest backup instead."),
    full: bool = typer.Option(False, "--full", help="With --verify: re-hash every object."),
    sample: int = typer.Option(64, min=1, help="With --verify: objects re-hashed at random."),
    include_blobs: bool = typer.Option(
        False, "--include-blobs", help="S3 storage: also copy the objects (default: to DEST/pool)."
    ),
    blobs_to: str | None = typer.Option(
        None, "--blobs-to", help="Copy the objects here instead: file:///dir or s3://bucket?..."
    ),
    keep: int = typer.Option(3, min=1, help="Complete backups kept in DEST."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Back up the database, keys and objects while the server runs (incremental).

    Exit codes: 0 done, 1 failed (the previous backup stays current), 2 bad arguments,
    3 pg_dump or the backup missing, 4 another backup running, 7 damage found.

    Example: docstore backup /srv/backups/docstore --quiet   (from cron)
    """
    from docstore.ops import backup as ops

    try:
        if verify:
            checked = ops.verify(dest, full=full, sample=sample, blobs_from=blobs_to, quiet=quiet)
            _report_verify(checked, as_json)
            if not checked.ok:
                raise typer.Exit(DAMAGED)
            return
        result = ops.backup(
            get_settings(), dest, include_blobs=include_blobs, blobs_to=blobs_to, keep=keep,
            quiet=quiet,
        )  # fmt: skip
    except ops.BackupError as exc:
        raise _fail(exc, exc.exit_code) from None
    except (OSError, RuntimeError, ValueError) as exc:
        raise _fail(exc, 1) from None
    _report_backup(result, as_json)
    if result.copy is not None and result.copy.missing:
        raise typer.Exit(DAMAGED)


def _report_backup(result: Any, as_json: bool) -> None:
    manifest = result.manifest
    summary = {
        "snapshot": str(result.snapshot),
        "schema_revision": manifest["schema_revision"],
        "objects": manifest["objects"]["count"],
        "object_bytes": manifest["objects"]["bytes"],
        "copied": manifest["objects"]["copied"],
        "hard_linked": manifest["objects"]["hard_linked"],
        "already_present": manifest["objects"]["already_present"],
        "copied_bytes": manifest["objects"]["copied_bytes"],
        "missing": len(manifest["objects"]["missing"]),
        "pruned_snapshots": result.pruned_snapshots,
        "pruned_objects": result.pruned_objects,
        **{f"storage_{k}": v for k, v in manifest["storage"].items()},
        "warnings": result.warnings,
    }
    if as_json:
        typer.echo(json.dumps(summary))
        return
    warnings = summary.pop("warnings")
    console.print(_rows("backup", {**summary, **manifest["counts"]}))
    for warning in warnings:
        console.print(f"[yellow]warning:[/] {warning}")


def _report_verify(checked: Any, as_json: bool) -> None:
    if as_json:
        out = {"snapshot": str(checked.snapshot), "ok": checked.ok}
        typer.echo(json.dumps({**out, "checked": checked.checked, "problems": checked.problems}))
        return
    console.print(f"{checked.snapshot}: {checked.checked} object(s) re-hashed")
    for problem in checked.problems:
        console.print(f"[red]{problem}[/red]")
    console.print("[green]intact[/green]" if checked.ok else "[red]damaged[/red]")


def restore(
    src: Path = typer.Argument(..., help="Backup directory (its newest complete backup)."),
    force: bool = typer.Option(False, "--force", help="Overwrite a non-empty database/storage."),
    blobs_from: str | None = typer.Option(
        None, "--blobs-from", help="Where the objects are, when not where the backup put them."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON (fsck's report)."),
) -> None:
    """Restore a backup into the configured (empty) data dir / database, then run fsck.

    Exit codes: 0 restored and fsck clean, 1 failed, 3 no backup there or pg_restore
    missing, 4 the target is not empty (without --force), 7 fsck found problems.

    Example: DOCSTORE_DATA_DIR=/srv/docstore docstore restore-backup /srv/backups/docstore
    """
    from docstore.cli.maintenance import show_fsck
    from docstore.ops import backup as ops
    from docstore.ops import dbdump
    from docstore.ops import restore as restoring

    try:
        result = restoring.restore(
            get_settings(), src, force=force, blobs_from=blobs_from, quiet=quiet
        )
    except ops.BackupError as exc:
        raise _fail(exc, exc.exit_code) from None
    except dbdump.ToolMissing as exc:
        raise _fail(exc, 3) from None
    except (OSError, RuntimeError, ValueError) as exc:
        raise _fail(exc, 1) from None
    if not as_json:
        copied = "no objects" if result.copy is None else f"{result.copy.copied} object(s) copied"
        console.print(
            f"restored {result.snapshot.name} (schema {result.manifest['schema_revision']}), "
            f"{copied}"
        )
        for note in result.notes:
            console.print(f"[yellow]note:[/] {note}")
    show_fsck(result.fsck, as_json)
    if not result.fsck.ok:
        raise typer.Exit(DAMAGED)


def status(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Versions, schema revision, sizes, the jobs' last runs and the last fsck's problems.

    Example: docstore status
    """
    from docstore.ops.status import collect

    try:
        picture = collect(get_settings())
    except FileNotFoundError as exc:
        raise _fail(exc, 3) from None
    if as_json:
        typer.echo(json.dumps(picture, default=str))
        return
    console.print(_rows("docstore", picture["installation"]))
    console.print(_rows("contents", picture["counts"]))
    jobs = Table(title="jobs (last run)")
    for col in ("job", "finished", "ok", "seconds", "summary"):
        jobs.add_column(col, overflow="fold")
    for job in picture["jobs"]:
        jobs.add_row(job["name"], str(job["finished_at"]), str(job["ok"]),
                     f"{job['seconds']:.1f}", json.dumps(job["summary"])[:120])  # fmt: skip
    console.print(jobs)
    problems = picture["fsck"]["problems"]
    if picture["fsck"]["finished_at"] is None:
        console.print("fsck: never run (docstore fsck)")
    elif not problems:
        console.print(f"fsck ({picture['fsck']['finished_at']}): [green]clean[/green]")
    else:
        console.print(
            f"fsck ({picture['fsck']['finished_at']}): [red]{len(problems)} problem(s)[/red]"
        )
        for finding in problems:
            console.print(f"  {finding['check']} {finding['subject']}: {finding['detail']}")


def register(app: typer.Typer) -> None:
    """Add the operations commands to the `docstore` command."""
    app.command()(backup)
    # `docstore restore PATH --version N` restores a document version (cli/user/files.py).
    app.command("restore-backup")(restore)
    app.command()(status)
