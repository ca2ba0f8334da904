"""`docstore reindex`: rebuild the search index's content (directly on the database)."""

from __future__ import annotations

import typer
from rich.console import Console

console = Console(stderr=True)


def reindex(
    user: str | None = typer.Option(None, "--user", help="Only this account's documents."),
    all_: bool = typer.Option(
        False, "--all", help="Read every document again, not only the pending ones."
    ),
) -> None:
    """Extract and index the text of documents whose current version is not indexed yet.

    Resumable: progress is kept in the database, so an interrupted run continues where it
    stopped (with --all, run it again without --all to continue).

    Example: docstore reindex --all
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from docstore.cli.maintenance import _services
    from docstore.search import indexing
    from docstore.users import repository as user_repo

    svc = _services()
    try:
        user_id = None
        if user is not None:
            with svc.database.read_transaction() as db:
                found = user_repo.by_email(db, user.strip().lower())
            if found is None:
                console.print(f"[red]no account {user}[/red]")
                raise typer.Exit(4)
            user_id = found.id
        if all_:
            indexing.mark_all_pending(svc, user_id)
        total = indexing.pending_count(svc, user_id)
        columns = (*Progress.get_default_columns()[:2], BarColumn(), MofNCompleteColumn())
        with Progress(*columns, TimeRemainingColumn(), console=console) as bar:
            task = bar.add_task("indexing", total=total)
            result = indexing.index_pending(
                svc,
                user_id=user_id,
                on_batch=lambda p: bar.update(task, completed=p.done + p.stale),
            )
        console.print(
            f"indexed {result.indexed}, failed {result.failed}, skipped {result.skipped}"
            + (f"; stopped: {result.errors[-1]}" if result.errors else "")
        )
        if result.errors:
            raise typer.Exit(1)
    finally:
        svc.close()


def register(app: typer.Typer) -> None:
    """Add `docstore reindex` to the `docstore` command."""
    app.command()(reindex)
