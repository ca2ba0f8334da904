"""`docstore changes`: print the change feed, once or as it happens (`--follow`)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from docstore.cli.user.common import EPILOG, FILES, JsonOpt, commands, connect, emit_json, err, out

# Bounds `--follow` to this many long-polls (of up to 30 s each): about a year.
MAX_POLLS = 1_100_000


def _line(change: dict[str, Any]) -> str:
    entry = change.get("entry") or {}
    where = entry.get("path") or ""
    return f"{change['seq']}\t{change['op']}\t{change['kind']}:{change['id']}\t{where}"


@commands.command("changes", epilog=EPILOG, rich_help_panel=FILES)
def changes(
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing changes as they happen.")
    ] = False,
    cursor: Annotated[
        str | None, typer.Option("--cursor", help="Start after this cursor (default: now).")
    ] = None,
    folder: Annotated[
        int | None, typer.Option("--folder", help="Only this folder's subtree (its id).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Print what changed in your files and in what is shared with you: one line per
    change (seq, op, kind:id, path); `--json` prints each change as one JSON object per
    line with `--follow`, else `{changes, cursor}`. Without `--cursor` the feed starts
    now; the cursor to continue from goes to stderr.

    Example: docstore changes --follow
    """
    with connect() as ds:
        position = cursor or ds.changes_cursor(folder)
        if not follow:
            got: list[dict[str, Any]] = []
            for _ in range(10_000):  # pages of 1,000
                page = ds.changes(position)
                got.extend(page["changes"])
                position = page["cursor"]
                if not page["has_more"]:
                    break
            if as_json:
                emit_json({"changes": got, "cursor": position})
                return
            for change in got:
                out.print(_line(change), highlight=False)
            err.print(f"cursor: {position}")
            return
        err.print(f"following changes from cursor {position} (Ctrl-C to stop)")
        for _ in range(MAX_POLLS):
            page = ds.changes(position)
            for change in page["changes"]:
                if as_json:
                    typer.echo(json.dumps(change, default=str))
                else:
                    out.print(_line(change), highlight=False)
            position = page["cursor"]
            if not page["has_more"]:
                ds.wait_for_changes(position, timeout=30)
