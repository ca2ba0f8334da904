"""`docstore admin …`: the admin console's operations over HTTP, after `docstore login` as an
administrator. They call the same `/api/v1/admin/...` endpoints as the web console (the
`docstore user` / `plan` commands instead work directly on the database)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from docstore.cli.user.common import EPILOG, JsonOpt, connect, emit_json, human, out, table

if TYPE_CHECKING:
    from docstore.client import DocstoreClient

app = typer.Typer(
    help="Administration over HTTP (after docstore login as an admin): accounts, storage, "
    "retention preview, audit.",
    no_args_is_help=True,
)
A = "/admin"


def _user_id(ds: DocstoreClient, who: str) -> int:
    """A user id from an id or an email (searched through GET /admin/users)."""
    if who.isdigit():
        return int(who)
    from docstore.cli.exit_codes import NOT_FOUND, CliError

    body = ds.request("GET", f"{A}/users", params={"q": who, "limit": 1000}).json()
    for user in body["items"]:
        if user["email"].lower() == who.strip().lower():
            return int(user["id"])
    raise CliError(f"no user {who}", NOT_FOUND)


def _user_rows(users: list[dict[str, Any]]) -> list[list[Any]]:
    return [
        [u["id"], u["email"], u["name"], u["plan"], human(u["used_bytes"]),
         human(u["reserved_bytes"]), human(u["quota_bytes"]),
         "yes" if u["is_admin"] else "", "active" if u["is_active"] else "disabled"]
        for u in users
    ]  # fmt: skip


USER_COLUMNS = ["id", "email", "name", "plan", "used", "reserved", "quota", "admin", "status"]


@app.command("users", epilog=EPILOG)
def users(
    query: Annotated[str | None, typer.Argument(help="Part of an email or name.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List accounts with their usage and status, optionally those matching QUERY.

    Example: docstore admin users ann
    """
    found: list[dict[str, Any]] = []
    cursor = None
    with connect() as ds:
        for _ in range(10_000):  # bounded: 1000 a page
            params = {"q": query, "limit": 1000, "cursor": cursor}
            body = ds.request("GET", f"{A}/users", params=params).json()
            found.extend(body["items"])
            cursor = body["next_cursor"]
            if not cursor:
                break
    if as_json:
        emit_json(found)
        return
    out.print(table("users", USER_COLUMNS, _user_rows(found)))


def _set_active(who: str, action: str, as_json: bool) -> None:
    with connect() as ds:
        user = ds.request("POST", f"{A}/users/{_user_id(ds, who)}/{action}").json()
    if as_json:
        emit_json(user)
        return
    out.print(f"{user['email']} is now {'active' if user['is_active'] else 'disabled'}")


@app.command("disable", epilog=EPILOG)
def disable(
    who: Annotated[str, typer.Argument(help="Email or user id.")], as_json: JsonOpt = False
) -> None:
    """Disable an account: it cannot sign in, and its tokens stop working at once.

    Example: docstore admin disable eve@example.com
    """
    _set_active(who, "disable", as_json)


@app.command("enable", epilog=EPILOG)
def enable(
    who: Annotated[str, typer.Argument(help="Email or user id.")], as_json: JsonOpt = False
) -> None:
    """Enable a disabled account again.

    Example: docstore admin enable eve@example.com
    """
    _set_active(who, "enable", as_json)


@app.command("storage", epilog=EPILOG)
def storage(as_json: JsonOpt = False) -> None:
    """Storage totals (logical vs stored: the dedup savings), pending GC, the last job runs.

    Example: docstore admin storage
    """
    with connect() as ds:
        s = ds.request("GET", f"{A}/storage").json()
    if as_json:
        emit_json(s)
        return
    rows = [
        ["logical (all versions)", human(s["logical_bytes"]), f"{s['versions']:,} versions"],
        ["stored (distinct blobs)", human(s["stored_bytes"]), ""],
        ["saved by deduplication", human(s["dedup_saved_bytes"]), ""],
        ["pending GC", human(s["pending_gc"]["bytes"]), f"{s['pending_gc']['count']:,} blobs"],
        ["pending GC, past grace", human(s["pending_gc_due"]["bytes"]),
         f"{s['pending_gc_due']['count']:,} blobs"],
    ]  # fmt: skip
    for state, b in sorted(s["blobs"].items()):
        rows.append([f"blobs {state}", human(b["bytes"]), f"{b['count']:,} blobs"])
    out.print(table("storage", ["", "bytes", "count"], rows))
    runs = [
        [name, run["finished_at"], "ok" if run["ok"] else "FAILED"] if run else [name, "never", ""]
        for name, run in s["last_runs"].items()
    ]
    out.print(table("last runs", ["job", "finished", "result"], runs))


@app.command("retention-preview", epilog=EPILOG)
def retention_preview(
    limit: Annotated[int, typer.Option(min=1, max=1000, help="At most this many.")] = 50,
    as_json: JsonOpt = False,
) -> None:
    """The versions a retention run would delete now (nothing is deleted).

    Example: docstore admin retention-preview --limit 20
    """
    with connect() as ds:
        body = ds.request("GET", f"{A}/retention/preview", params={"limit": limit}).json()
    if as_json:
        emit_json(body)
        return
    rows = [
        [i["document_id"], i["document_name"], i["version_number"], human(i["size_bytes"]),
         i["owner_email"], i["created_at"]]
        for i in body["items"]
    ]  # fmt: skip
    title = "retention would delete" + (" (first ones)" if body["truncated"] else "")
    out.print(table(title, ["document", "name", "version", "size", "owner", "created"], rows))


@app.command("audit-verify", epilog=EPILOG)
def audit_verify(as_json: JsonOpt = False) -> None:
    """Check the audit chain on the server now; exit 1 when it is broken.

    Example: docstore admin audit-verify
    """
    with connect() as ds:
        verdict = ds.request("POST", f"{A}/audit/verify").json()
    if as_json:
        emit_json(verdict)
    elif verdict["ok"]:
        out.print(
            f"audit log intact: {verdict['checked']} entries verified, "
            f"{verdict['pending']} pending sealing"
        )
    else:
        out.print(f"audit log BROKEN at #{verdict['first_broken_id']}: {verdict['reason']}")
    if not verdict["ok"]:
        raise typer.Exit(1)


@app.command("audit-export", epilog=EPILOG)
def audit_export(
    fmt: Annotated[str, typer.Option("--format", help="jsonl or csv.")] = "jsonl",
    since: Annotated[str | None, typer.Option(help="RFC 3339 time (inclusive).")] = None,
    until: Annotated[str | None, typer.Option(help="RFC 3339 time (exclusive).")] = None,
) -> None:
    """Write the server's audit log (with its seals) to stdout.

    Example: docstore admin audit-export --format csv > audit.csv
    """
    params = {"format": fmt, "since": since, "until": until}
    with connect() as ds:
        body = ds.request("GET", f"{A}/audit/export", params=params)
    sys.stdout.write(body.text)
