"""Maintenance commands: `docstore worker`, `docstore retention run`, `docstore fsck`."""

from __future__ import annotations

import json
import logging
import signal
import threading
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.table import Table

from docstore.config import get_settings

if TYPE_CHECKING:
    from docstore.retention.fsck import FsckReport
    from docstore.services import Services

retention_app = typer.Typer(help="Version retention.", no_args_is_help=True)
console = Console()


def _services() -> Services:
    """Resources on a migrated database, without importing the web app (these commands run
    from cron and tests: the app's imports would double their start-up time)."""
    from docstore import migrate
    from docstore.services import Services
    from docstore.users.service import ensure_default_plan

    svc = Services.from_settings(get_settings())
    migrate.upgrade(svc.database.engine)
    with svc.database.transaction() as db:
        ensure_default_plan(db)
    return svc


def _table(title: str, rows: list[dict[str, Any]]) -> Table:
    table = Table(title=title)
    for col in rows[0] if rows else []:
        table.add_column(col, overflow="fold")
    for row in rows:
        table.add_row(*(str(v) for v in row.values()))
    return table


def worker(
    once: bool = typer.Option(False, "--once", help="Run the due jobs once, then exit."),
    job: list[str] = typer.Option([], "--job", help="Only this job (repeatable)."),
    force: bool = typer.Option(False, help="With --once: run the jobs even if not due."),
    poll: float | None = typer.Option(None, help="Seconds between passes (default: settings)."),
) -> None:
    """Run the background jobs (retention, trash purge, blob GC, ...), each in one worker at a time.

    Several workers may run on one database: a lease row per job keeps them apart.

    Example: DOCSTORE_DATABASE_URL=postgresql+psycopg://db/docstore docstore worker
    """
    from docstore.retention.worker import Worker

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    svc = _services()
    try:
        w = Worker(svc, only=job or None)
    except ValueError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    try:
        if once:
            runs = w.run_pending(force=force)
            rows = [{"job": r.name, "ok": r.ok, "seconds": f"{r.seconds:.2f}",
                     "result": json.dumps(r.result)} for r in runs]  # fmt: skip
            console.print(_table("jobs run", rows))
            if any(not r.ok for r in runs):
                raise typer.Exit(1)
            return
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        w.run_forever(stop, poll)
    finally:
        svc.close()


@retention_app.command("run")
def retention_run(
    dry_run: bool = typer.Option(False, "--dry-run", help="Only report what would go."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Apply version retention now: keep young, current, pinned and the newest versions.

    Example: docstore retention run --dry-run
    """
    from docstore.retention import runs, service

    svc = _services()
    try:
        if dry_run:
            result = service.run(svc.database, dry_run=True).as_dict()
        else:  # recorded as the retention job's latest run (the admin console shows it)
            result = runs.timed(
                svc.database,
                runs.RETENTION,
                lambda: service.run(svc.database).as_dict(),
                lambda out: runs.Outcome(True, {**out, "trigger": "command"}),
            )
    finally:
        svc.close()
    if as_json:
        typer.echo(json.dumps(result))
        return
    title = "retention (dry run: nothing removed)" if dry_run else "retention"
    rows = [{"": key.replace("_", " "), "value": f"{value:,}" if isinstance(value, int) else value}
            for key, value in result.items() if key != "dry_run"]  # fmt: skip
    console.print(_table(title, rows))


def show_fsck(report: FsckReport, as_json: bool) -> None:
    """Print an fsck report: JSON, or the checked counts, the findings and a verdict."""
    if as_json:
        typer.echo(json.dumps(report.as_dict()))
    else:
        console.print(_table("checked", [report.checked]))
        if report.findings:
            rows = [{"check": f.check, "subject": f.subject, "detail": f.detail,
                     "severity": f.severity, "repaired": f.repaired}
                    for f in report.findings]  # fmt: skip
            console.print(_table("findings", rows))
        errors = len(report.errors)
        fixed = sum(1 for f in report.errors if f.repaired)
        if errors == 0:
            console.print("[green]clean[/green]")
        else:
            console.print(f"[red]{errors} problem(s)[/red], {fixed} repaired")


def fsck(
    repair: bool = typer.Option(False, "--repair", help="Fix what can be fixed safely."),
    rehash: bool = typer.Option(False, "--rehash", help="Also verify every object's SHA-256."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Check quotas, ref counts, objects, GC leftovers and orphans; exit 1 if anything is wrong.

    Example: docstore fsck --rehash --repair
    """
    from docstore.retention import fsck as checker

    svc = _services()
    try:
        report = checker.run(svc, repair=repair, rehash=rehash)
    finally:
        svc.close()
    show_fsck(report, as_json)
    if not report.ok:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add the maintenance commands to the `docstore` command."""
    app.command()(worker)
    app.command()(fsck)
    app.add_typer(retention_app, name="retention")
