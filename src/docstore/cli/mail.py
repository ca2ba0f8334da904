"""`docstore mail ls` / `docstore mail show ID`: the outbox (DOCSTORE_* settings), for an
admin of a single-machine install with no SMTP server to hand a mailed link over."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="Outgoing mail: the outbox and what was delivered.", no_args_is_help=True)
console = Console()


@app.command("ls")
def mail_ls(
    limit: int = typer.Option(50, min=1, max=10_000, help="How many, newest first."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List the newest mails: id, time, recipient, subject, status, attempts.

    Example: docstore mail ls --limit 20
    """
    from sqlalchemy import select

    from docstore.cli.maintenance import _services
    from docstore.mail.models import OutboxMail

    svc = _services()
    with svc.database.transaction() as db:
        rows = [
            {
                "id": m.id,
                "created_at": m.created_at.isoformat(timespec="seconds"),
                "to": m.to_address,
                "subject": m.subject,
                "status": m.status,
                "attempts": m.attempts,
                "last_error": m.last_error,
            }
            for m in db.scalars(select(OutboxMail).order_by(OutboxMail.id.desc()).limit(limit))
        ]
    svc.close()
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table(title="mail")
    for col in ("id", "created_at", "to", "subject", "status", "attempts"):
        table.add_column(col, overflow="fold")
    for row in rows:
        table.add_row(
            *(str(row[c]) for c in ("id", "created_at", "to", "subject", "status", "attempts"))
        )
    console.print(table)


@app.command("show")
def mail_show(mail_id: int = typer.Argument(..., help="The id from `docstore mail ls`.")) -> None:
    """Print one mail: its headers and plain-text body (with its link). A delivered mail's
    body is read from its .eml file (the embedded default); over SMTP only the headers
    remain, as the link was for the recipient alone.

    Example: docstore mail show 12
    """
    import email
    import email.policy

    from docstore.cli.maintenance import _services
    from docstore.mail.models import OutboxMail

    svc = _services()
    with svc.database.transaction() as db:
        m = db.get(OutboxMail, mail_id)
        if m is None:
            typer.echo(f"no mail with id {mail_id}", err=True)
            raise typer.Exit(3)
        head = [
            f"Id: {m.id}",
            f"To: {m.to_address}",
            f"Subject: {m.subject}",
            f"Status: {m.status} (attempts: {m.attempts})",
            f"Created: {m.created_at.isoformat(timespec='seconds')}",
        ]
        if m.sent_at is not None:
            head.append(f"Sent: {m.sent_at.isoformat(timespec='seconds')} to {m.delivered_to}")
        if m.last_error:
            head.append(f"Last error: {m.last_error}")
        body = m.body_text
        eml = Path(m.delivered_to) if m.delivered_to and m.delivered_to.endswith(".eml") else None
    svc.close()
    if not body and eml is not None and eml.is_file():
        parsed = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
        part = parsed.get_body(preferencelist=("plain",))
        body = str(part.get_content()) if part is not None else ""  # type: ignore[attr-defined]
        head.append(f"File: {eml}")
    typer.echo("\n".join(head))
    typer.echo("")
    typer.echo(body or "(body not kept: delivered over SMTP)")
