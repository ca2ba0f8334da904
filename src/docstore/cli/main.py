"""The `docstore` command: run the server and administer it on the configured database."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from docstore.cli.admin import app as admin_app
from docstore.cli.audit import app as audit_app
from docstore.cli.mail import app as mail_app
from docstore.cli.maintenance import register as register_maintenance
from docstore.cli.ops import register as register_ops
from docstore.cli.reindex import register as register_reindex
from docstore.cli.user import register as register_user_commands
from docstore.config import Settings, get_settings

app = typer.Typer(help="docstore: self-hosted document storage and sharing.", no_args_is_help=True)
user_app = typer.Typer(help="Manage accounts (directly on the database).", no_args_is_help=True)
plan_app = typer.Typer(help="Manage plans (directly on the database).", no_args_is_help=True)
app.add_typer(user_app, name="user")
app.add_typer(plan_app, name="plan")
register_maintenance(app)
register_ops(app)
app.add_typer(audit_app, name="audit")
app.add_typer(admin_app, name="admin")
app.add_typer(mail_app, name="mail")
register_reindex(app)
console = Console()


def _services(settings: Settings | None = None) -> Any:
    from docstore.app import startup
    from docstore.services import Services

    svc = Services.from_settings(settings or get_settings())
    startup(svc)
    return svc


def _print(rows: list[dict[str, Any]], as_json: bool, title: str) -> None:
    if as_json:
        typer.echo(json.dumps(rows, default=str, indent=2))
        return
    table = Table(title=title)
    for col in rows[0].keys() if rows else []:
        table.add_column(col)
    for row in rows:
        table.add_row(*(str(v) for v in row.values()))
    console.print(table)


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8000, help="Port to listen on."),
    workers: int = typer.Option(1, help="Server processes (needs PostgreSQL for more than 1)."),
    access_log: bool = typer.Option(
        False,
        help="Also log a line per request (off: the audit log already records every "
        "access, and the line costs CPU on every request).",
    ),
) -> None:
    """Run the HTTP server; the schema is migrated on start-up.

    Example: docstore serve --host 0.0.0.0 --port 8000
    """
    import os

    import uvicorn

    from docstore.server import limit_malloc_arenas

    limit_malloc_arenas()
    os.environ.setdefault("DOCSTORE_HOST", host)
    os.environ.setdefault("DOCSTORE_PORT", str(port))
    get_settings.cache_clear()
    settings = get_settings()
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "proxy_headers": False,
        "log_level": "info",
        "access_log": access_log,
        "limit_concurrency": settings.max_concurrent_requests,
        "http": "docstore.server:GuardedHttpToolsProtocol",
    }
    options["timeout_graceful_shutdown"] = settings.shutdown_grace_seconds
    options["log_config"] = _log_config()
    _refuse_newer_schema(settings)
    if workers > 1:  # each worker process builds its app from the environment
        uvicorn.run("docstore.asgi:app", workers=workers, **options)
        return
    from docstore.app import create_app
    from docstore.server import DrainingServer

    server = DrainingServer(uvicorn.Config(create_app(settings), **options))
    server.run()
    if not server.started:  # as uvicorn.run: the app did not start (see the log)
        raise typer.Exit(3)


def _log_config() -> dict[str, Any]:
    """uvicorn's logging, plus docstore's own INFO lines (migrations, jobs) beside its own."""
    import copy

    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["docstore"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    return config


def _refuse_newer_schema(settings: Settings) -> None:
    """Stop here, with the reason, when a newer docstore migrated the database (the app's
    start-up would refuse too, inside a traceback). A database that does not answer yet is
    left to the start-up, which reports it."""
    from sqlalchemy.exc import OperationalError

    from docstore import migrate as schema
    from docstore.db import make_engine

    engine = make_engine(settings.resolved_database_url)
    try:
        schema.refuse_newer(engine)  # SchemaTooNew: error and exit 1 (cli.exit_codes)
    except OperationalError:
        pass
    finally:
        engine.dispose()


@app.command()
def migrate(
    check: bool = typer.Option(
        False,
        "--check",
        help="Only say whether the database is behind, changing nothing: exit 0 when it is at "
        "the latest schema, 1 when migrations are pending, 4 when a newer docstore migrated it.",
    ),
) -> None:
    """Migrate the configured database to the latest schema (once, however many processes
    run it at the same time).

    Example: DOCSTORE_DATABASE_URL=postgresql+psycopg://db/docstore docstore migrate --check
    """
    if check:
        _check_schema(get_settings())
    svc = _services()
    svc.close()
    typer.echo("database is at the latest schema")


def _check_schema(settings: Settings) -> None:
    from docstore import migrate as schema
    from docstore.cli.exit_codes import CONFLICT, ERROR, OK
    from docstore.db import make_engine

    url = settings.resolved_database_url
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        found = schema.Status((), schema.head_revision())  # no file yet: no schema, none made
    else:
        engine = make_engine(url)
        try:
            found = schema.status(engine)
        finally:
            engine.dispose()
    typer.echo(found.describe())
    raise typer.Exit({"current": OK, "behind": ERROR, "newer": CONFLICT}[found.state])


@user_app.command("create")
def user_create(
    email: str,
    name: str = typer.Option(..., help="Display name."),
    password: str = typer.Option(..., prompt=True, hide_input=True, help="Password."),
    admin: bool = typer.Option(False, help="Make the user an administrator."),
    plan: str | None = typer.Option(None, help="Plan name (default: free)."),
    verified: bool = typer.Option(
        False, "--verified", help="Vouch for the address: pending shares to it apply at once."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Create an account.

    Example: docstore user create ann@example.com --name Ann --password 's3cret-pass'
    """
    from docstore.errors import ValidationFailed
    from docstore.users import passwords, service

    reason = passwords.problem(password)  # the rule of every path that sets a password
    if reason is not None:
        raise ValidationFailed(f"The password is refused: {reason}.")
    svc = _services()
    with svc.database.transaction() as db:
        user = service.create_user(
            db,
            email=email,
            name=name,
            password=password,
            plan_name=plan,
            is_admin=admin,
            email_verified=verified,
        )
        row = _user_row(user)
    _print([row], as_json, "created")


def _user_row(user: Any) -> dict[str, Any]:
    return {
        "id": user.id,
        "email": user.email,
        "name": user.name,
        "plan": user.plan_name,
        "quota_bytes": user.quota_bytes,
        "used_bytes": user.used_bytes,
        "is_admin": user.is_admin,
        "email_verified": user.email_verified,
    }


@user_app.command("list")
def user_list(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List accounts.

    Example: docstore user list --json
    """
    from docstore.users import service

    svc = _services()
    with svc.database.transaction() as db:
        rows = [_user_row(u) for u in service.list_users(db)]
    _print(rows, as_json, "users")


def _find_user_id(db: Any, email: str) -> int:
    from docstore.users import repository, service

    user = repository.by_email(db, service.normalise_email(email))
    if user is None:
        typer.echo(f"no user with email {email}", err=True)
        raise typer.Exit(3)
    return int(user.id)


@user_app.command("set-quota")
def user_set_quota(email: str, quota_bytes: int = typer.Argument(..., min=0)) -> None:
    """Set a user's quota in bytes.

    Example: docstore user set-quota ann@example.com 21474836480
    """
    from docstore.users import service

    svc = _services()
    with svc.database.transaction() as db:
        service.admin_update(db, _find_user_id(db, email), quota_bytes=quota_bytes)
    typer.echo(f"quota of {email} set to {quota_bytes} bytes")


@user_app.command("set-plan")
def user_set_plan(email: str, plan: str) -> None:
    """Move a user to a plan (their quota becomes the plan's).

    Example: docstore user set-plan ann@example.com team
    """
    from docstore.users import service

    svc = _services()
    with svc.database.transaction() as db:
        service.admin_update(db, _find_user_id(db, email), plan_name=plan)
    typer.echo(f"{email} is now on plan {plan}")


@plan_app.command("set")
def plan_set(
    name: str,
    quota_bytes: int = typer.Option(..., min=0, help="Default quota in bytes."),
    max_versions: int = typer.Option(..., min=1, help="Versions kept after the window."),
    retention_days: int = typer.Option(..., min=0, help="Days every version is kept."),
) -> None:
    """Create or replace a plan.

    Example: docstore plan set team --quota-bytes 107374182400 --max-versions 50 --retention-days 30
    """
    from docstore.users import service

    svc = _services()
    with svc.database.transaction() as db:
        service.put_plan(db, name, quota_bytes, max_versions, retention_days)
    typer.echo(f"plan {name} saved")


@plan_app.command("list")
def plan_list(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List plans.

    Example: docstore plan list
    """
    from docstore.users import service

    svc = _services()
    with svc.database.transaction() as db:
        rows = [
            {
                "name": p.name,
                "quota_bytes": p.quota_bytes,
                "max_versions": p.max_versions,
                "retention_days": p.retention_days,
            }
            for p in service.list_plans(db)
        ]
    _print(rows, as_json, "plans")


# The everyday commands over HTTP (login, ls, upload, ...) and exit codes by kind of error.
register_user_commands(app)

if __name__ == "__main__":
    app()
