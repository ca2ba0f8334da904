"""`docstore sync LOCAL_DIR REMOTE_PATH`: keep a local folder and a docstore folder the same.

`docstore sync status [LOCAL_DIR]` shows what the state of a synced folder says (no network).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from docstore.cli import exit_codes
from docstore.cli.exit_codes import CliError
from docstore.cli.user.common import EPILOG, FILES, commands, connect, err, human, out

if TYPE_CHECKING:
    from rich.status import Status

    from docstore.client.sync import Report

_ARROWS = {
    "upload": "↑",
    "download": "↓",
    "conflict": "≠",
    "remote_move": "→",
    "local_move": "←",
    "remote_delete": "✗",
    "local_trash": "✗",
    "error": "!",
}


def _status(local_dir: Path, as_json: bool) -> None:
    from docstore.client.sync import state_summary
    from docstore.client.sync.state import STATE_DIR

    if not (local_dir / STATE_DIR / "state.db").exists():
        raise CliError(f"{local_dir} is not a synced folder", exit_codes.NOT_FOUND)
    summary = state_summary(local_dir)
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    out.print(f"{summary['local_dir']} ⇄ {summary['server']}{summary['remote_path']}")
    out.print(
        f"{summary['files']} files ({human(summary['bytes'])}), {summary['folders']} folders; "
        f"last sync {summary['last_sync'] or 'never'} ({summary['last_result'] or '-'})"
    )


@commands.command("sync", rich_help_panel=FILES, epilog=EPILOG)
def sync_command(
    local_dir: Annotated[
        str, typer.Argument(help="The local folder, or `status` (a folder of that name: ./status).")
    ],
    remote_path: Annotated[
        str | None, typer.Argument(help="The docstore folder, e.g. /Sync (created if missing).")
    ] = None,
    once: Annotated[bool, typer.Option("--once", help="One round, then exit (default).")] = False,
    watch: Annotated[
        bool, typer.Option("--watch", help="Keep syncing on local and remote changes.")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would be done; change nothing.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON event per line.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print failures only.")] = False,
) -> None:
    """Two-way sync of LOCAL_DIR with REMOTE_PATH: edits, moves and deletes both ways.

    Conflicting edits keep both files (the server names the copy); deletions go to the server
    trash and to LOCAL_DIR/.docstore-sync/trash/ (30 days). Temporary files and the patterns in
    LOCAL_DIR/.docstoreignore (gitignore syntax) are left alone. Exit code 1 when a path could
    not be synced (each is reported with its reason). `docstore sync status [LOCAL_DIR]`
    summarises a synced folder.

    Example: docstore sync ~/Documents /Documents --watch
    """
    from docstore.client.sync import Syncer, SyncError

    if local_dir == "status":
        _status(Path(remote_path or "."), as_json)
        return
    if remote_path is None:
        raise CliError("give the remote folder: docstore sync LOCAL_DIR REMOTE_PATH", 2)
    if watch and (once or dry_run):
        raise CliError("--watch goes with neither --once nor --dry-run", exit_codes.USAGE)
    root = Path(local_dir)
    root.mkdir(parents=True, exist_ok=True)
    printer = _Printer(as_json, quiet, dry_run)
    with connect() as ds:
        try:
            syncer = Syncer(ds, root, remote_path, dry_run=dry_run, on_event=printer.event)
        except SyncError as exc:
            raise CliError(str(exc), exit_codes.USAGE) from None
        with syncer:
            if watch:
                from docstore.client.sync.watch import Watcher

                watcher = Watcher(syncer, on_round=printer.summary)
                try:
                    watcher.run()
                except KeyboardInterrupt:
                    watcher.stop.set()
                return
            with printer.live():
                report = syncer.run_once()
            printer.summary(report)
    if not report.ok:
        raise typer.Exit(exit_codes.ERROR)


class _Printer:
    """Events as lines (or JSON lines); a summary per round; failures always, on stderr."""

    def __init__(self, as_json: bool, quiet: bool, dry_run: bool) -> None:
        self.as_json, self.quiet, self.dry_run = as_json, quiet, dry_run
        self.files = self.bytes = 0
        self.status: Status | None = None

    @contextmanager
    def live(self) -> Iterator[None]:
        """A rich status line (files and bytes so far) while a round runs, on a terminal."""
        if self.as_json or self.quiet or not out.is_terminal:
            yield
            return
        with out.status("syncing…") as status:
            self.status = status
            try:
                yield
            finally:
                self.status = None

    def event(self, event: dict[str, Any]) -> None:
        if event["action"] in ("upload", "download"):
            self.files += 1
            self.bytes += int(event.get("bytes") or 0)
            if self.status is not None:
                self.status.update(f"syncing… {self.files} files, {human(self.bytes)}")
        if self.as_json:
            typer.echo(json.dumps(event, default=str))
        elif event["action"] == "error":
            err.print(f"[bold red]![/] {event['path']}: {event['error']}", markup=True)
        elif not self.quiet:
            arrow = _ARROWS.get(event["action"], "·")
            dest = f" → {event['dest']}" if event.get("dest") else ""
            prefix = "would " if self.dry_run else ""
            out.print(f"{arrow} {prefix}{event['action']} {event['path']}{dest}", markup=False)

    def summary(self, report: Report) -> None:
        moved = sum(int(e.get("bytes") or 0) for e in report.actions)
        if self.as_json:
            line = {
                "action": "summary",
                "actions": len(report.actions),
                "bytes": moved,
                "errors": report.errors,
                "listed": report.listed,
            }
            typer.echo(json.dumps(line))
        elif not self.quiet:
            state = "up to date" if not report.actions else f"{len(report.actions)} changes"
            failed = f", {len(report.errors)} failed" if report.errors else ""
            out.print(f"{state} ({human(moved)} transferred){failed}")
