"""Effective permission: the one place that decides who may see or change what.

Owner, else the highest active, unexpired share for the user, or for a group the user is a
member of, on the document or on any ancestor folder, else a link. Ancestors are the ids in
the folder's materialized path, so the check is one query on the (user, folder) /
(user, document) share indexes (and, through the user's memberships, the (group, folder) /
(group, document) ones) whose cost grows with folder depth, not with the number of shares.
The answer is cached per (user, item, folder path) for 60 s (sharing/runtime.py explains
why that stays correct; a membership change invalidates like a share change).

The level an action needs is decided by the service function that performs it (it passes
`needed` here); endpoints and web pages call those functions and never pick a `Level`
(tests/test_levels.py holds them to it). Seeing an item is the default need.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Select,
    and_,
    any_,
    bindparam,
    cast,
    exists,
    false,
    func,
    literal_column,
    or_,
    select,
    true,
    union_all,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql.functions import FunctionElement

from docstore.context import Actor
from docstore.db import UTCDateTime, utcnow
from docstore.documents.models import Document, DocumentVersion
from docstore.errors import Forbidden, NotFound
from docstore.folders.models import Folder
from docstore.groups.models import Group, GroupMember
from docstore.sharing.models import Share
from docstore.sharing.runtime import for_session


class Level(IntEnum):
    """Permission levels, ordered: NONE < VIEW < COMMENT < EDIT < OWNER."""

    NONE = 0
    VIEW = 1
    COMMENT = 2
    EDIT = 3
    OWNER = 4


def path_ids(path: str) -> list[int]:
    """The folder ids of a materialized path, root first: '/1/5/9/' -> [1, 5, 9]."""
    return [int(p) for p in path.strip("/").split("/") if p]


def active_share(now: datetime | ColumnElement[datetime]) -> ColumnElement[bool]:
    """Shares that count: not revoked and not expired (to the second) at `now`."""
    return Share.is_active.is_(True) & or_(Share.expires_at.is_(None), Share.expires_at > now)


def member_groups(user_id: Any) -> Select[Any]:
    """The ids of the groups the user is a member of (managers included)."""
    return select(GroupMember.group_id).where(GroupMember.user_id == user_id)


def grantee(user_id: Any) -> ColumnElement[bool]:
    """Shares that name the user: to them, or to a group they are in."""
    return or_(Share.shared_with_user_id == user_id, Share.group_id.in_(member_groups(user_id)))


def _user_grants_on(user_id: int, folder_path: str, document_id: int | None) -> ColumnElement[bool]:
    targets: list[ColumnElement[bool]] = [Share.folder_id.in_(path_ids(folder_path))]
    if document_id is not None:
        targets.append(Share.document_id == document_id)
    return grantee(user_id) & or_(*targets)


def _grant_statement(postgres: bool) -> Select[Any, Any]:
    """The one query of a check, built once: the highest active grant of :user_id (to them
    or to a group they are in) on :document_id or any folder in :ancestors, and the
    earliest end among those grants.

    On PostgreSQL each ancestor is one probe of the (user, folder) index whatever plan the
    server caches for the prepared statement: with an OR over both share indexes, a generic
    plan scans all of the user's shares instead (100 ms for a user with 20,000 of them).
    """
    user, now = bindparam("user_id", type_=BigInteger), bindparam("now", type_=UTCDateTime)
    document_id: Any = bindparam("document_id")
    ids: Any = (
        bindparam("ancestors", type_=ARRAY(BigInteger))
        if postgres
        else bindparam("ancestors", expanding=True)
    )
    grants = _grants(postgres, user, document_id, ids, now, outer=())
    return select(func.max(grants.c.permission), func.min(grants.c.expires_at))


def _grants(
    postgres: bool,
    user: ColumnElement[Any],
    document_id: ColumnElement[Any],
    ids: Any,
    now: ColumnElement[Any],
    outer: tuple[Any, ...],
) -> Any:
    """The active grants of `user` on `document_id` or the folders `ids` (see
    `_grant_statement`), as a subquery; `outer` are the tables of an enclosing statement
    the expressions come from (correlated, never joined in)."""
    cols = (Share.permission, Share.expires_at)
    live = active_share(now)
    on_document = (
        select(*cols)
        .where(Share.shared_with_user_id == user, Share.document_id == document_id, live)
        .correlate(*outer)
    )
    # Group shares: from the user's memberships (one probe of the (user, group) index) to
    # each group's shares on the item or its ancestors (the (group, item) share indexes).
    via_group = select(*cols).join(GroupMember, GroupMember.group_id == Share.group_id)
    group_on_document = via_group.where(
        GroupMember.user_id == user, Share.document_id == document_id, live
    ).correlate(*outer)
    if postgres:
        ancestor = func.unnest(ids).table_valued("fid").render_derived(name="ancestor")
        per_ancestor = (
            select(*cols)
            .where(Share.shared_with_user_id == user, Share.folder_id == ancestor.c.fid, live)
            .offset(literal_column("0"))  # a fence: the subquery stays one probe per ancestor
            .correlate(*outer, ancestor)
            .lateral("per_ancestor")
        )
        on_folders = (
            select(per_ancestor.c.permission, per_ancestor.c.expires_at)
            .select_from(ancestor)
            .join(per_ancestor, true())
            .correlate(*outer)
        )
        group_on_folders = via_group.where(
            GroupMember.user_id == user, Share.folder_id == any_(ids), live
        ).correlate(*outer)
    else:
        on_folders = select(*cols).where(
            Share.shared_with_user_id == user, Share.folder_id.in_(ids), live
        )
        group_on_folders = via_group.where(
            GroupMember.user_id == user, Share.folder_id.in_(ids), live
        )
    return union_all(on_folders, on_document, group_on_folders, group_on_document).subquery(
        "grants"
    )


def grant_lateral(user_id: Any, document: Any, folder: Any, outer: tuple[Any, ...]) -> Any:
    """`level_for`'s share query for the document of each row of a larger PostgreSQL
    statement: a LATERAL subquery of one row, (`grant_level`, `grant_until`), to outer-join
    ON true. `user_id` is the reader's id as a column of the enclosing statement, `document`
    and `folder` its document and folder tables; `outer` every table those come from. The
    same rule and index probes as the check, so a hot read can authenticate, check and
    fetch in one statement (documents.service.get_in_one_statement)."""
    ids = cast(func.string_to_array(func.btrim(folder.path, "/"), "/"), ARRAY(BigInteger))
    now = bindparam("now", type_=UTCDateTime)
    grants = _grants(True, user_id, document.id, ids, now, outer)
    return (
        select(
            func.max(grants.c.permission).label("grant_level"),
            func.min(grants.c.expires_at).label("grant_until"),
        )
        .correlate(*outer)
        .lateral("share_grant")
    )


_GRANT = {True: _grant_statement(postgres=True), False: _grant_statement(postgres=False)}


def grant_statement(dialect: str) -> Select[Any, Any]:
    """The check's statement for a database dialect (parameters: see `grant_params`)."""
    return _GRANT[dialect == "postgresql"]


def grant_params(
    user_id: int, folder_path: str, document_id: int | None, now: datetime
) -> dict[str, Any]:
    """The parameters of `grant_statement` for a check (document_id None: a folder)."""
    return {
        "user_id": user_id,
        "ancestors": path_ids(folder_path),
        "document_id": document_id,
        "now": now,
    }


def _share_grant(
    db: Session, user_id: int, folder_path: str, document_id: int | None
) -> tuple[Level, datetime | None]:
    """The highest grant and when the earliest expiring of the counted shares ends."""
    stmt = grant_statement(db.get_bind().dialect.name)
    params = grant_params(user_id, folder_path, document_id, utcnow())
    best, until = db.execute(stmt, params).one()
    return Level(best or 0), until


def share_level(
    db: Session,
    user_id: int,
    owner_id: int,
    folder_path: str,
    document_id: int | None,
    *,
    created_at: datetime | None = None,
) -> Level:
    """The user's share grant on an item of `owner_id` in `folder_path`, through the cache.

    `created_at` tells apart two items that reuse one id (SQLite may hand out the id of a
    purged row again), so a cached grant never outlives the item it was computed for.
    """
    grants = for_session(db).grants
    if grants is None:
        return _share_grant(db, user_id, folder_path, document_id)[0]
    item = f"{folder_path}@{created_at.timestamp() if created_at else ''}"
    cached, ticket = grants.lookup(user_id, owner_id, document_id, item)
    if cached is not None:
        return Level(cached)
    level, until = _share_grant(db, user_id, folder_path, document_id)
    if ticket is not None:
        grants.store(ticket, int(level), until)
    return level


def _link_grant(actor: Actor, folder_path: str, document_id: int | None) -> Level:
    link = actor.link
    if link is None:
        return Level.NONE
    if link.document_id is not None and link.document_id == document_id:
        return _link_grant_level(link)
    if link.folder_id is not None and link.folder_id in path_ids(folder_path):
        return _link_grant_level(link)
    return Level.NONE


def level_for(
    db: Session,
    actor: Actor,
    owner_id: int,
    folder_path: str,
    document_id: int | None,
    *,
    created_at: datetime | None = None,
    granted: Level | None = None,
) -> Level:
    """The actor's effective level on an item given its owner and (parent) folder path.
    `granted`: the user's share grant, read already by the statement that fetched the item
    (`grant_lateral`), instead of asking the cache and the database for it."""
    if actor.user is not None:
        if actor.user.id == owner_id:
            return Level.OWNER
        if granted is not None:
            level = granted
        else:
            level = share_level(
                db, actor.user.id, owner_id, folder_path, document_id, created_at=created_at
            )
    else:
        level = Level.NONE
    return max(level, _link_grant(actor, folder_path, document_id))


def folder_level(db: Session, actor: Actor, folder: Folder) -> Level:
    """The actor's effective level on a folder (a share on it or any ancestor)."""
    return level_for(db, actor, folder.owner_id, folder.path, None, created_at=folder.created_at)


def document_level(db: Session, actor: Actor, doc: Document, folder_path: str) -> Level:
    """The actor's effective level on a document in the folder with `folder_path`."""
    return level_for(db, actor, doc.owner_id, folder_path, doc.id, created_at=doc.created_at)


def creator_level(actor: Actor, owner_id: int) -> Level:
    """The actor's level on an item they have just created: OWNER of their own, else EDIT
    (an item belongs to the owner of the folder it went into, where creating needed EDIT).
    """
    return Level.OWNER if owner_id == actor.user_id else Level.EDIT


def require(level: Level, needed: Level) -> None:
    """404 when the caller cannot see the item at all, 403 when they lack the level."""
    if level == Level.NONE:
        raise NotFound()
    if level < needed:
        raise Forbidden(f"This needs {needed.name} permission; you have {level.name}.")


def require_live(
    level: Level, needed: Level, is_deleted: bool, *, include_deleted: bool = False
) -> None:
    """`require`, and 404 for a trashed item: trashed items exist only for their owner,
    and only where `include_deleted` (the trash)."""
    if is_deleted and not (include_deleted and level == Level.OWNER):
        raise NotFound()
    require(level, needed)


def get_folder_for(
    db: Session,
    actor: Actor,
    folder_id: int,
    needed: Level = Level.VIEW,
    *,
    for_update: bool = False,
    include_deleted: bool = False,
) -> tuple[Folder, Level]:
    """Load a folder the actor may act on at `needed` (by default: see), or raise 404/403."""
    folder = db.scalar(_FOLDER_FOR_UPDATE if for_update else _FOLDER, {"folder_id": folder_id})
    if folder is None:
        raise NotFound()
    level = folder_level(db, actor, folder)
    require_live(level, needed, folder.is_deleted, include_deleted=include_deleted)
    return folder, level


# Built once, as _DOCUMENT_READ below.
_FOLDER = select(Folder).where(Folder.id == bindparam("folder_id"))
_FOLDER_FOR_UPDATE = _FOLDER.with_for_update()


# session.info key: objects loaded alongside a checked document, kept alive for the session.
_LOADED = "docstore.loaded"
# Every document read runs this: built once (see users.repository._TOKEN_AND_USER).
_DOCUMENT_READ = (
    select(Document, Folder, DocumentVersion)
    .join(Folder, Folder.id == Document.folder_id)
    .outerjoin(DocumentVersion, DocumentVersion.id == Document.current_version_id)
    .where(Document.id == bindparam("document_id"))
)


def get_document_for(
    db: Session,
    actor: Actor,
    document_id: int,
    needed: Level = Level.VIEW,
    *,
    for_update: bool = False,
    include_deleted: bool = False,
) -> tuple[Document, Folder, Level]:
    """Load a document (and its folder) the actor may act on at `needed` (by default: see),
    or raise 404/403.

    One round trip: the folder is joined in and, for reads, so is the current version,
    which lands in the session's identity map for `document_out` to find without a query.
    """
    found: Any
    if for_update:
        found = db.execute(
            select(Document, Folder)
            .join(Folder, Folder.id == Document.folder_id)
            .where(Document.id == document_id)
            .with_for_update(of=Document)
        ).first()
    else:
        found = db.execute(_DOCUMENT_READ, {"document_id": document_id}).first()
        if found is not None and found[2] is not None:
            # The identity map holds objects weakly: keep the version for this transaction.
            db.info.setdefault(_LOADED, []).append(found[2])
    if found is None:
        raise NotFound()
    doc: Document = found[0]
    folder: Folder = found[1]
    level = document_level(db, actor, doc, folder.path)
    require_live(level, needed, doc.is_deleted, include_deleted=include_deleted)
    return doc, folder, level


# -- reads of many items: the rule as SQL -------------------------------------------------


# The `folders` aliases of the correlated lookups `readable` makes (a document's folder; the
# folder a link names), built once: an ORM alias sets up a proxy for each column the first
# time it is used, ~1 ms of Python per alias and call, and a search builds `readable` five
# times. Each appears once per subquery, so sharing them changes no statement.
_DOCUMENT_FOLDER = aliased(Folder)
_LINK_FOLDER = aliased(Folder)


def readable(
    actor: Actor,
    model: type[Document] | type[Folder],
    needed: Level = Level.VIEW,
    *,
    include_deleted: bool = False,
) -> ColumnElement[bool]:
    """The condition that makes a statement over `model` return only the rows the actor may
    act on at `needed`: `level_for` and `require_live` as SQL, so a read of many items can
    not forget a check (polar's `get_readable_statement`). The owner; an active share for
    the user on the document, or on its folder or any ancestor; the link the actor holds.
    A trashed row only for its owner, and only with `include_deleted` (the trash).

    For one item use `get_document_for` / `get_folder_for` (they also tell 404 from 403).
    """
    # The item's folder path: a folder's own, a document's folder's (correlated).
    path: Any = model.path if model is Folder else _document_folder_path()
    user_id = actor.user_id
    allowed: list[ColumnElement[bool]] = []
    if user_id is not None:
        allowed.append(model.owner_id == user_id)
        if needed < Level.OWNER:
            allowed.append(_shared_with(user_id, model, needed))
    link = actor.link
    if link is not None and _link_grant_level(link) >= needed:
        if link.document_id is not None and model is Document:
            allowed.append(Document.id == link.document_id)
        if link.folder_id is not None:
            top = _LINK_FOLDER
            top_path = select(top.path).where(top.id == link.folder_id).scalar_subquery()
            allowed.append(path.startswith(top_path, autoescape=False))
    if not allowed:
        return false()
    live: ColumnElement[bool] = model.is_deleted == false()
    if include_deleted and user_id is not None:
        live = or_(live, model.owner_id == user_id)
    return and_(or_(*allowed), live)


def _document_folder_path() -> Any:
    """The path of a document's folder, as a subquery correlated to `Document`."""
    parent = _DOCUMENT_FOLDER
    return (
        select(parent.path)
        .where(parent.id == Document.folder_id)
        .correlate(Document)
        .scalar_subquery()
    )


class in_ancestors(FunctionElement[bool]):  # an SQL function's name
    """`folder_id IN <the folder ids of a materialized path>` ('/1/5/9/' -> 1, 5, 9): a
    share check then probes the (user, folder) share index once per ancestor instead of
    comparing the item's path with the path of every folder the user has a share on (one
    LIKE per share and item: 250 ms for a search over 4,000 candidates by a user with 200
    shares). On PostgreSQL `= ANY(array)`: with `IN (SELECT unnest(...))` the planner
    hashed all of the user's shares for every item instead (6.9 s for 20,000 items)."""

    name = "in_ancestors"
    inherit_cache = True


@compiles(in_ancestors)  # SQLite, and str() of a statement
def _in_ancestors_sqlite(element: in_ancestors, compiler: Any, **kw: Any) -> str:
    column, path = (compiler.process(c, **kw) for c in element.clauses)
    # Compiled column expressions, never input: S608 does not apply.
    ids = f"json_each('[' || replace(trim({path}, '/'), '/', ',') || ']')"
    return f"{column} IN (SELECT value FROM {ids})"  # noqa: S608


@compiles(in_ancestors, "postgresql")
def _in_ancestors_postgresql(element: in_ancestors, compiler: Any, **kw: Any) -> str:
    column, path = (compiler.process(c, **kw) for c in element.clauses)
    return f"{column} = ANY (string_to_array(trim(both '/' from {path}), '/')::bigint[])"


def _shared_with(
    user_id: int, model: type[Document] | type[Folder], needed: Level
) -> ColumnElement[bool]:
    """An active share of at least `needed` for the user (or a group they are in) on the
    item or an ancestor."""
    path: Any = Folder.path if model is Folder else _document_folder_path()
    ancestors = in_ancestors(Share.folder_id, path)
    live = (Share.permission >= int(needed), active_share(utcnow()))
    # Two statements, one per share index ((user, folder) and (group, folder)): one with
    # an OR over both grantees would read neither index.
    conds = [
        exists(select(Share.id).where(Share.shared_with_user_id == user_id, ancestors, *live)),
        exists(
            select(Share.id).where(Share.group_id.in_(member_groups(user_id)), ancestors, *live)
        ),
    ]
    if model is Document:
        conds.append(
            exists(
                select(Share.id).where(grantee(user_id), Share.document_id == Document.id, *live)
            )
        )
    return or_(*conds)


def _link_grant_level(link: Share) -> Level:
    """The level a link gives on what it covers (none once revoked or expired)."""
    if not link.is_active or (link.expires_at is not None and link.expires_at <= utcnow()):
        return Level.NONE
    return Level(link.permission)


@dataclass
class Grant:
    """One reason for a user's access to an item."""

    kind: str  # owner | direct | folder | group | link
    permission: Level
    share_id: int | None = None
    folder_id: int | None = None
    group_id: int | None = None
    group_name: str | None = None


def grants_statement(
    user_id: int, folder_path: str, document_id: int | None, now: datetime
) -> Select[Any]:
    """The active shares that give `user_id` access to an item (same rule as the check)."""
    grants = _user_grants_on(user_id, folder_path, document_id)
    return select(Share).where(grants, active_share(now))


def explain(
    db: Session, actor: Actor, user_id: int | None, owner_id: int, folder_path: str,
    document_id: int | None,
) -> tuple[Level, list[Grant]]:  # fmt: skip
    """Why `user_id` (or, with None, the link the actor holds) has access: strongest first,
    then nearest; the level is what `level_for` decides."""
    via: list[Grant] = []
    if user_id is not None and user_id == owner_id:
        return Level.OWNER, [Grant("owner", Level.OWNER)]
    if user_id is not None:
        depth = {fid: i for i, fid in enumerate(path_ids(folder_path))}
        shares: list[Share] = list(
            db.scalars(grants_statement(user_id, folder_path, document_id, utcnow()))
        )
        for s in shares:
            if s.group_id is not None:
                via.append(Grant("group", Level(s.permission), s.id, s.folder_id, s.group_id))
            elif s.document_id is not None:
                via.append(Grant("direct", Level(s.permission), s.id))
            else:
                via.append(Grant("folder", Level(s.permission), s.id, s.folder_id))
        via.sort(key=lambda g: (-g.permission, -depth.get(g.folder_id or -1, len(depth))))
        group_ids = {g.group_id for g in via if g.group_id is not None}
        if group_ids:
            stmt = select(Group.id, Group.name).where(Group.id.in_(group_ids))
            names = {gid: name for gid, name in db.execute(stmt)}
            for g in via:
                g.group_name = names.get(g.group_id) if g.group_id is not None else None
    if user_id is None and actor.link is not None:
        link_level = _link_grant(actor, folder_path, document_id)
        if link_level > Level.NONE:
            via.append(Grant("link", link_level, actor.link.id, actor.link.folder_id))
    return max((g.permission for g in via), default=Level.NONE), via
