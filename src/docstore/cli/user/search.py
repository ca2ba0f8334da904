"""`docstore search`: find documents and folders by name or by what is written in them."""

from __future__ import annotations

import html
import re
from typing import Annotated

import typer

from docstore.cli.user.common import (
    EPILOG,
    FILES,
    JsonOpt,
    commands,
    connect,
    emit_json,
    human,
    out,
    resolve,
    table,
    when,
)

_MARK = re.compile(r"</?mark>")


def plain_snippet(snippet: str) -> str:
    """The snippet as terminal text: matched words in bold, HTML entities decoded."""
    parts = re.split(r"(<mark>.*?</mark>)", snippet)
    text = []
    for part in parts:
        word = html.unescape(_MARK.sub("", part)).replace("[", r"\[")
        text.append(f"[bold]{word}[/bold]" if part.startswith("<mark>") else word)
    return "".join(text)


@commands.command(rich_help_panel=FILES, epilog=EPILOG)
def search(
    query: Annotated[
        str, typer.Argument(help='Words (all must match), "a phrase", -word, prefix*, name:word.')
    ],
    within: Annotated[
        str | None, typer.Option("--in", help="Only under this folder (path or folder:ID).")
    ] = None,
    kind: Annotated[str | None, typer.Option(help="document or folder.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many results.", min=1)] = 50,
    as_json: JsonOpt = False,
) -> None:
    """Find what you can see by name or content, best first.

    Example: docstore search "quarterly report" --in /finance
    """
    with connect() as ds:
        folder_id = resolve(ds, within).id if within else None
        hits = []
        for hit in ds.search(query, folder_id=folder_id, kind=kind, limit=min(limit, 100)):
            hits.append(hit)
            if len(hits) >= limit:
                break
    if as_json:
        emit_json([h.model_dump(mode="json") for h in hits])
        return
    rows = [
        [h.path, h.kind, human(h.size_bytes) if h.kind == "document" else "",
         when(h.updated_at), plain_snippet(h.snippet)]
        for h in hits
    ]  # fmt: skip
    out.print(table(f"search: {query}", ["path", "type", "size", "modified", "match"], rows))
