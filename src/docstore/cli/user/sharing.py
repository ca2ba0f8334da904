"""Sharing and comments over HTTP: `share`, `link`, `shares`, `unshare`, `access`,
`shared`, `comment`, `comments`."""

from __future__ import annotations

from contextlib import suppress
from typing import TYPE_CHECKING, Annotated, Any

import typer

from docstore.cli import exit_codes
from docstore.cli.exit_codes import CliError
from docstore.cli.user.common import (
    _REF,
    EPILOG,
    SHARING,
    JsonOpt,
    commands,
    connect,
    document,
    emit_json,
    err,
    out,
    parse_expiry,
    resolve,
    table,
    when,
)

if TYPE_CHECKING:
    from docstore.client import DocstoreClient, Node, Share
    from docstore.client.models import Id


def _share_row(share: Share) -> dict[str, Any]:
    return {
        "id": share.id,
        "permission": share.permission,
        "with": "link"
        if share.kind == "link"
        else f"group {share.group_name or share.group_id}"
        if share.kind == "group"
        else share.email or share.user_id,
        "expires": when(share.expires_at),
        "active": share.is_active,
        "password": "yes" if share.has_password else "",
    }


# -- sharing ----------------------------------------------------------------------------------


def _target(node: Node) -> tuple[Id | None, Id | None]:
    """(document_id, folder_id) for a share of this node."""
    return (node.id, None) if node.kind == "document" else (None, node.id)


@commands.command(rich_help_panel=SHARING, epilog=EPILOG)
def share(
    path: Annotated[str, typer.Argument(help="Document or folder.")],
    with_: Annotated[
        str | None, typer.Option("--with", help="Email of the person to share with.")
    ] = None,
    group: Annotated[
        int | None, typer.Option("--group", help="Id of a group you are in, to share with.")
    ] = None,
    permission: Annotated[
        str, typer.Option(help="VIEW, COMMENT or EDIT.", case_sensitive=False)
    ] = "VIEW",
    expires: Annotated[
        str | None, typer.Option(help="Expiry: a duration (7d, 12h) or an ISO time.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Share a document or folder with a person (a folder share covers all below it).

    Example: docstore share /projects/q1 --with bob@example.com --permission EDIT
    (or --group 7: every member of group 7 gets the access)
    """
    if (with_ is None) == (group is None):
        raise typer.BadParameter("give exactly one of --with and --group")
    level = _permission(permission)
    with connect() as ds:
        node = resolve(ds, path)
        doc_id, folder_id = _target(node)
        created = ds.create_share(
            document_id=doc_id,
            folder_id=folder_id,
            permission=level,
            email=with_,
            group_id=group,
            expires_at=parse_expiry(expires),
        )
    if as_json:
        emit_json(created.model_dump(mode="json"))
    else:
        who = with_ if with_ is not None else f"group {created.group_name or group}"
        err.print(f"shared {path} with {who} ({level}); share id {created.id}")


def _permission(value: str) -> Any:
    level = value.upper()
    if level not in ("VIEW", "COMMENT", "EDIT"):
        raise typer.BadParameter("permission must be VIEW, COMMENT or EDIT")
    return level


@commands.command(rich_help_panel=SHARING, epilog=EPILOG)
def link(
    path: Annotated[str, typer.Argument(help="Document or folder.")],
    expires: Annotated[
        str | None, typer.Option(help="Expiry: a duration (7d, 12h, 30m) or an ISO time.")
    ] = None,
    password: Annotated[
        bool, typer.Option("--password", help="Protect the link with a password (asked for).")
    ] = False,
    permission: Annotated[
        str, typer.Option(help="VIEW, COMMENT or EDIT.", case_sensitive=False)
    ] = "VIEW",
    as_json: JsonOpt = False,
) -> None:
    """Create a link share that anyone with the URL can open.

    Example: docstore link /projects/q1/plan.md --expires 7d --password
    """
    level = _permission(permission)
    secret = None
    if password:
        secret = typer.prompt("Link password", hide_input=True, confirmation_prompt=True, err=True)
    with connect() as ds:
        node = resolve(ds, path)
        doc_id, folder_id = _target(node)
        created = ds.create_share(
            document_id=doc_id,
            folder_id=folder_id,
            permission=level,
            link=True,
            expires_at=parse_expiry(expires),
            password=secret,
        )
    if as_json:
        emit_json(created.model_dump(mode="json"))
        return
    url = created.url or (f"{ds.base_url}/api/v1/links/{created.token}" if created.token else "")
    out.print(url, highlight=False, soft_wrap=True)
    err.print(
        f"link to {path} ({level}), expires {when(created.expires_at) or 'never'}; "
        f"share id {created.id}"
    )


def _shares_of(ds: DocstoreClient, node: Node) -> list[Share]:
    if node.kind == "document":
        return ds.document_shares(node.id)
    return ds.folder_shares(node.id)


@commands.command(rich_help_panel=SHARING, epilog=EPILOG)
def shares(
    path: Annotated[str, typer.Argument(help="Document or folder you own.")],
    as_json: JsonOpt = False,
) -> None:
    """List the shares of a document or folder.

    Example: docstore shares /projects/q1
    """
    with connect() as ds:
        items = _shares_of(ds, resolve(ds, path))
    if as_json:
        emit_json([s.model_dump(mode="json") for s in items])
        return
    rows = [list(_share_row(s).values()) for s in items]
    out.print(table(path, ["id", "permission", "with", "expires", "active", "password"], rows))


@commands.command(rich_help_panel=SHARING, epilog=EPILOG)
def unshare(
    path: Annotated[str, typer.Argument(help="Document or folder you own.")],
    with_: Annotated[str | None, typer.Option("--with", help="Revoke this person's share.")] = None,
    links: Annotated[bool, typer.Option("--links", help="Revoke every link share.")] = False,
    share_id: Annotated[str | None, typer.Option("--id", help="Revoke this share id.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Revoke every share.")] = False,
) -> None:
    """Revoke shares of a document or folder, at once.

    Example: docstore unshare /projects/q1 --with bob@example.com
    """
    if not (with_ or links or share_id or all_):
        raise CliError("say which shares to revoke: --with EMAIL, --links, --id or --all", 2)
    with connect() as ds:
        chosen = []
        for s in _shares_of(ds, resolve(ds, path)):
            row = _share_row(s)
            if (
                all_
                or (share_id is not None and str(s.id) == share_id)
                or (links and row["with"] == "link")
                or (with_ is not None and str(row["with"]).lower() == with_.lower())
            ):
                chosen.append(s)
        if not chosen:
            raise CliError(f"no matching share on {path}", exit_codes.NOT_FOUND)
        for s in chosen:
            ds.delete_share(s.id)
    err.print(f"revoked {len(chosen)} share(s) of {path}")


def _user_id(ds: DocstoreClient, path: str, email: str) -> Id:
    """A user id for an email: from the shares on the item and its folders, or the admin list."""
    if email.isdigit():
        return int(email)
    wanted = email.strip().lower()
    from docstore.client import DocstoreError

    nodes: list[Node] = []
    with suppress(DocstoreError):
        nodes = ds.resolve_chain(path) if not _REF.match(path) else [resolve(ds, path)]
    for node in reversed(nodes):
        try:
            found = _shares_of(ds, node)
        except DocstoreError:
            continue
        for s in found:
            if s.user_id is not None and (s.email or "").lower() == wanted:
                return s.user_id
    with suppress(DocstoreError):  # an administrator can look anyone up
        for user in ds.admin_list_users():
            if user.email.lower() == wanted:
                return user.id
    raise CliError(
        f"no user {email} among the shares of {path}; pass their user id instead",
        exit_codes.NOT_FOUND,
    )


@commands.command(rich_help_panel=SHARING, epilog=EPILOG)
def access(
    path: Annotated[str, typer.Argument(help="Document.")],
    user: Annotated[
        str | None, typer.Option("--user", help="Whose access (email or user id); default: yours.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Show the effective permission on a document and why (owner, direct, folder, link).

    Example: docstore access /projects/q1/plan.md --user bob@example.com
    """
    with connect() as ds:
        node = document(ds, path)
        user_id = _user_id(ds, path, user) if user else None
        result = ds.access(node.id, user_id)
    if as_json:
        emit_json(result.model_dump(mode="json"))
        return
    rows = [[v.kind, v.share_id, v.folder_id] for v in result.via]
    title = f"{user or 'you'}: {result.permission or 'no access'} on {path}"
    out.print(table(title, ["via", "share id", "folder id"], rows))


@commands.command(rich_help_panel=SHARING, epilog=EPILOG)
def shared(as_json: JsonOpt = False) -> None:
    """List what others shared with you (use doc:ID or folder:ID as a path for these).

    Example: docstore shared
    """
    with connect() as ds:
        items = ds.shared_with_me()
    if as_json:
        emit_json([i.model_dump(mode="json") for i in items])
        return
    rows = [
        [i.name, f"{'folder' if i.kind == 'folder' else 'doc'}:{i.id}", i.permission] for i in items
    ]
    out.print(table("shared with me", ["name", "path", "permission"], rows))


@commands.command(rich_help_panel=SHARING, epilog=EPILOG)
def comment(
    path: Annotated[str, typer.Argument(help="Document.")],
    text: Annotated[str, typer.Argument(help="The comment.")],
    as_json: JsonOpt = False,
) -> None:
    """Comment on a document (needs COMMENT permission).

    Example: docstore comment /projects/q1/plan.md "Looks good, ship it"
    """
    with connect() as ds:
        node = document(ds, path)
        created = ds.add_comment(node.id, text)
    if as_json:
        emit_json(created.model_dump(mode="json"))
    else:
        err.print(f"comment {created.id} added to {path}")


@commands.command(rich_help_panel=SHARING, epilog=EPILOG)
def comments(
    path: Annotated[str, typer.Argument(help="Document.")],
    as_json: JsonOpt = False,
) -> None:
    """List a document's comments.

    Example: docstore comments /projects/q1/plan.md
    """
    with connect() as ds:
        items = ds.list_comments(document(ds, path).id)
    if as_json:
        emit_json([c.model_dump(mode="json") for c in items])
        return
    rows = [[when(c.created_at), c.author_id, c.body] for c in items]
    out.print(table(path, ["when", "author", "comment"], rows))
