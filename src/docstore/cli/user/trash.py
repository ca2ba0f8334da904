"""`docstore trash`: list the trash, restore items from it or purge them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from docstore.cli import exit_codes
from docstore.cli.exit_codes import CliError
from docstore.cli.user.common import (
    EPILOG,
    FILES,
    JsonOpt,
    _nfc,
    commands,
    connect,
    emit_json,
    err,
    out,
    table,
    when,
)

if TYPE_CHECKING:
    from docstore.client import DocstoreClient


trash_app = typer.Typer(
    help="List the trash, restore items from it or purge them. Example: docstore trash",
    invoke_without_command=True,
    epilog=EPILOG,
)
commands.add_typer(trash_app, name="trash", rich_help_panel=FILES)


# -- trash ------------------------------------------------------------------------------------


def _trash_ref(item: Any) -> str:
    return f"{'folder' if item.kind == 'folder' else 'doc'}:{item.id}"


def _pick_trash(ds: DocstoreClient, refs: list[str]) -> list[Any]:
    """Trash items by `doc:ID` / `folder:ID` (as `docstore trash` shows) or by name."""
    items = ds.list_trash()
    picked = []
    for ref in refs:
        matches = [i for i in items if _trash_ref(i) == ref] or [
            i for i in items if i.name == _nfc(ref)
        ]
        if not matches:
            raise CliError(f"{ref} is not in the trash", exit_codes.NOT_FOUND)
        if len(matches) > 1:
            names = ", ".join(_trash_ref(i) for i in matches)
            raise CliError(f"{ref} is ambiguous: use one of {names}", exit_codes.USAGE)
        picked.append(matches[0])
    return picked


@trash_app.callback()
def trash(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """List the trash; `trash restore ITEM` and `trash purge ITEM|--all` act on it.

    Example: docstore trash
    """
    if ctx.invoked_subcommand is not None:
        return
    with connect() as ds:
        items = ds.list_trash()
    if as_json:
        emit_json([i.model_dump(mode="json") for i in items])
        return
    rows = [[i.name, i.kind, _trash_ref(i), when(i.deleted_at)] for i in items]
    out.print(table("trash", ["name", "type", "item", "deleted"], rows))


@trash_app.command("restore", epilog=EPILOG)
def trash_restore(
    items: Annotated[list[str], typer.Argument(help="doc:ID, folder:ID or a name.")],
    as_json: JsonOpt = False,
) -> None:
    """Put items back where they were (or in the root if that folder is gone).

    Example: docstore trash restore plan.md folder:12
    """
    restored = []
    with connect() as ds:
        for item in _pick_trash(ds, items):
            if item.kind == "folder":
                restored.append(ds.restore_folder(item.id).model_dump(mode="json"))
            else:
                restored.append(ds.restore_document(item.id).model_dump(mode="json"))
    if as_json:
        emit_json(restored)
    else:
        for r in restored:
            err.print(f"restored {r['name']}")


@trash_app.command("purge", epilog=EPILOG)
def trash_purge(
    items: Annotated[list[str] | None, typer.Argument(help="doc:ID, folder:ID or a name.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Purge the whole trash.")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete trashed items for good: their versions go and the quota is released.

    Example: docstore trash purge --all --yes
    """
    if not items and not all_:
        raise CliError("name the items to purge, or pass --all", exit_codes.USAGE)
    with connect() as ds:
        chosen = [] if all_ else _pick_trash(ds, items or [])
        what = "the whole trash" if all_ else ", ".join(i.name for i in chosen)
        if not yes and not typer.confirm(f"Purge {what} for good?", err=True):
            raise typer.Exit(exit_codes.ERROR)
        if all_:
            ds.empty_trash()
        for item in chosen:
            if item.kind == "folder":
                ds.purge_folder(item.id)
            else:
                ds.purge_document(item.id)
    err.print(f"purged {what}")
