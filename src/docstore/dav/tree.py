"""The WebDAV namespace over docstore's items: resolving a URL to a folder, document,
version or trash entry (with the caller's level, from `sharing.permissions`), and listing
a collection's members in one statement per table."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote

from sqlalchemy import (
    BigInteger,
    Integer,
    Select,
    String,
    and_,
    bindparam,
    false,
    literal_column,
    select,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql.functions import FunctionElement

from docstore.context import Actor
from docstore.dav import locking
from docstore.db import fastpath, utcnow
from docstore.documents.models import Document, DocumentVersion
from docstore.errors import NotFound, Unauthenticated
from docstore.folders.models import Folder
from docstore.sharing.models import Share
from docstore.sharing.permissions import (
    Level,
    active_share,
    get_document_for,
    get_folder_for,
    level_for,
)

AREAS = ("files", "shared", "trash", "versions")
PREFIX = "/dav/"
COLLECTIONS = frozenset({"root", "area", "folder", "versions", "trash_folder"})


@dataclass
class Node:
    """One resource as WebDAV shows it."""

    kind: (
        str  # root | area | folder | document | versions | version | trash_document | trash_folder
    )
    href: str
    name: str
    area: str = ""
    item_id: int | None = None
    owner_id: int | None = None
    created: datetime | None = None
    modified: datetime | None = None
    size: int = 0
    mime: str = "application/octet-stream"
    version_id: int | None = None
    checksum: str | None = None
    level: Level = Level.VIEW
    # The lock namespace: the folder its URL space starts at, and the path below it.
    ns_root: int | None = None
    rel: str = ""
    ns_href: str = ""  # the href of the namespace's root collection
    doc: Document | None = None  # a versions collection's document (its versions listed)
    document_id: int | None = None  # the document a document or version node shows

    @property
    def is_collection(self) -> bool:
        """Whether this is a collection (its href ends with '/')."""
        return self.kind in COLLECTIONS

    @property
    def etag(self) -> str | None:
        """The strong ETag the API serves for a document: its current version id."""
        if self.version_id is None:
            return None
        return f'"{self.version_id}"'


@dataclass
class Target:
    """What a request URL names: the existing node, or the parent a new one would go in."""

    segments: list[str]
    node: Node | None
    parent: Node | None
    name: str
    extras: dict[str, object] = field(default_factory=dict)

    @property
    def area(self) -> str:
        """files, shared, trash, versions, or '' for /dav/ itself."""
        return self.segments[0] if self.segments else ""


def href_of(segments: list[str], collection: bool) -> str:
    """The URL path of a resource, each segment percent-encoded."""
    path = PREFIX + "/".join(quote(s, safe="") for s in segments)
    if collection and segments:
        path += "/"
    return path


class Columns:
    """One table's columns in a row of several (`_walk_statement`'s, each labelled with a
    prefix), read by the model's attribute names: a node is built from it as from an
    instance, without one."""

    __slots__ = ("_prefix", "_row")

    def __init__(self, row: Any, prefix: str) -> None:
        self._row = row
        self._prefix = prefix

    def __getattr__(self, name: str) -> Any:
        return getattr(self._row, self._prefix + name)


def folder_node(
    folder: Folder | Columns, segments: list[str], area: str, level: Level, ns: int, rel: str
) -> Node:
    """A node for a folder (an instance, or its columns in a row)."""
    return Node(
        kind="folder",
        href=href_of(segments, True),
        name=folder.name or area,
        area=area,
        item_id=folder.id,
        owner_id=folder.owner_id,
        created=folder.created_at,
        modified=folder.updated_at,
        level=level,
        ns_root=ns,
        rel=rel,
    )


def document_node(
    doc: Document | Columns,
    version: DocumentVersion | Columns | None,
    segments: list[str],
    area: str,
    level: Level,
    ns: int,
    rel: str,
) -> Node:
    """A node for a document (its current version's size and ETag), from instances or
    their columns in a row."""
    return Node(
        kind="document",
        href=href_of(segments, False),
        name=doc.name,
        area=area,
        item_id=doc.id,
        owner_id=doc.owner_id,
        created=doc.created_at,
        modified=doc.updated_at,
        size=version.size_bytes if version else 0,
        mime=doc.mime_type,
        version_id=doc.current_version_id,
        checksum=version.checksum_sha256 if version else None,
        level=level,
        ns_root=ns,
        rel=rel,
        document_id=doc.id,
    )


class path_segment(FunctionElement[str]):  # an SQL function's name
    """`path_segment(names, i)`: the name at (0-based) index `i` of the path `names` the
    walk statement was given in one parameter: a JSON array on SQLite, a text[] on
    PostgreSQL (compiled below)."""

    name = "path_segment"
    inherit_cache = True
    type = String()


@compiles(path_segment)  # SQLite, and str() of a statement
def _path_segment_sqlite(element: path_segment, compiler: Any, **kw: Any) -> str:
    names, index = (compiler.process(c, **kw) for c in element.clauses)
    return f"json_extract({names}, '$[' || ({index}) || ']')"


@compiles(path_segment, "postgresql")
def _path_segment_postgresql(element: path_segment, compiler: Any, **kw: Any) -> str:
    names, index = (compiler.process(c, **kw) for c in element.clauses)
    return f"({names})[({index}) + 1]"


def _walk_statement(postgres: bool) -> Select[Any]:
    """The one statement of a walk: from the folder :base_id down the names :names (:count
    of them), a live folder per name while one exists (a recursive CTE, one probe of the
    (parent, name) index per level). A row per folder reached, by depth; the deepest but
    one (depth :last) also carries the live document named by the last name, with its
    current version; every row says whether the lock namespace :base_id has live locks."""
    names = bindparam("names", type_=ARRAY(String) if postgres else String)
    top = (
        select(literal_column("0").label("depth"), Folder.id.label("id"))
        .where(Folder.id == bindparam("base_id", type_=BigInteger))
        .cte("walk", recursive=True)
    )
    child = aliased(Folder)
    step = (
        select((top.c.depth + literal_column("1")).label("depth"), child.id)
        .join(
            child,
            and_(
                child.parent_id == top.c.id,
                child.name == path_segment(names, top.c.depth),
                child.is_deleted == false(),
            ),
        )
        .where(top.c.depth < bindparam("count", type_=Integer))
    )
    walk = top.union_all(step)
    leaf = and_(
        Document.folder_id == walk.c.id,
        walk.c.depth == bindparam("last", type_=Integer),
        Document.name == path_segment(names, walk.c.depth),
        Document.is_deleted == false(),
    )
    return (
        select(
            walk.c.depth,
            locking.any_live(bindparam("base_id", type_=BigInteger)).label("has_locks"),
            *(c.label("f_" + c.key) for c in Folder.__table__.c),
            *(c.label("d_" + c.key) for c in Document.__table__.c),
            *(c.label("v_" + c.key) for c in DocumentVersion.__table__.c),
        )
        .select_from(walk)
        .join(Folder, Folder.id == walk.c.id)
        .outerjoin(Document, leaf)
        .outerjoin(DocumentVersion, DocumentVersion.id == Document.current_version_id)
        .order_by(walk.c.depth)
    )


_WALK = {True: _walk_statement(postgres=True), False: _walk_statement(postgres=False)}


def _walk_rows(db: Session, base_id: int, rest: list[str]) -> list[Any]:
    """The rows of `_walk_statement` for the names `rest` below the folder `base_id`."""
    postgres = db.get_bind().dialect.name == "postgresql"
    names: Any = rest
    if not postgres:
        # SQLite's JSON strings end at a NUL, which PostgreSQL's text cannot hold at all
        # (there the statement fails as the per-name queries did): a JSON null matches no
        # name, as a name with a NUL matched none.
        names = json.dumps([None if "\x00" in n else n for n in rest], ensure_ascii=False)
    params = {
        "base_id": base_id,
        "names": names,
        "count": len(rest),
        "last": len(rest) - 1,
        "now": utcnow(),
    }
    return fastpath.rows(db, _WALK[postgres], params)


def _walk(
    db: Session, actor: Actor, base_id: int, base_segments: list[str], rest: list[str], area: str
) -> Target:
    """Walk `rest` down from the folder `base_id` (named by `base_segments`) in one
    statement (`_walk_statement`): rclone asks for a path about four times per file, and a
    statement per level was half of its server CPU."""
    found = _walk_rows(db, base_id, rest)
    if not found:
        raise NotFound()
    if not found[0].has_locks:
        locking.note_lock_free(db, base_id)
    # found[d] is the folder at depth d (one live folder per name). The nodes are built
    # from the rows themselves: ORM instances of them (no caller reads one) were ~5 % of
    # rclone's requests (py-spy).
    top = found[0]  # the folder `base_id` itself (`folder_level` of its row)
    level = level_for(db, actor, top.f_owner_id, top.f_path, None, created_at=top.f_created_at)
    ns_href = href_of(base_segments, True)

    def node_at(depth: int) -> Node:
        columns = Columns(found[depth], "f_")
        rel = "/".join(rest[:depth])
        node = folder_node(columns, base_segments + rest[:depth], area, level, base_id, rel)
        node.ns_href = ns_href
        return node

    count, reached = len(rest), found[-1].depth
    if count == 0:
        return Target(base_segments, node_at(0), None, base_segments[-1])
    segments = base_segments + rest[: reached + 1]
    if reached == count:  # a folder (a folder wins over a document of the same name)
        return Target(segments, node_at(count), node_at(count - 1), rest[-1])
    if reached < count - 1:  # a missing folder (or a document) on the way
        return Target(segments, None, None, rest[reached])
    parent = node_at(reached)
    last = found[-1]
    if last.d_id is None:
        return Target(segments, None, parent, rest[-1])
    version = Columns(last, "v_") if last.v_id is not None else None
    node = document_node(
        Columns(last, "d_"), version, segments, area, level, base_id, "/".join(rest)
    )
    node.ns_href = ns_href
    if area == "shared":  # a document share may give more than its folder's
        shared = level_for(
            db, actor, last.d_owner_id, last.f_path, last.d_id, created_at=last.d_created_at
        )
        node.level = max(level, shared)
    return Target(segments, node, parent, rest[-1])


def shared_entries(db: Session, actor: Actor) -> dict[str, tuple[str, int]]:
    """/dav/shared/'s members: a name per item shared with the caller (kind, id)."""
    assert actor.user is not None
    now = utcnow()
    rows = db.execute(
        select(Share.document_id, Share.folder_id, Document.name, Folder.name)
        .outerjoin(Document, Document.id == Share.document_id)
        .outerjoin(Folder, Folder.id == Share.folder_id)
        .where(Share.shared_with_user_id == actor.user.id, active_share(now))
        .order_by(Share.id)
    ).all()
    out: dict[str, tuple[str, int]] = {}
    for doc_id, folder_id, doc_name, folder_name in rows:
        kind, item, name = (
            ("document", doc_id, doc_name) if doc_id else ("folder", folder_id, folder_name)
        )
        if item is None or name is None or ((kind, item) in out.values()):
            continue
        candidate, n = name, 2
        while candidate in out:
            candidate, n = f"{name} ({n})", n + 1
        out[candidate] = (kind, item)
    return out


def trash_name(kind: str, item_id: int, name: str) -> str:
    """A trash entry's member name: unique, and says what it restores."""
    return f"{kind[0]}{item_id}-{name}"


def resolve(db: Session, actor: Actor, segments: list[str]) -> Target:
    """What `segments` (the URL path below /dav/, decoded) names for the caller."""
    user = actor.user
    if user is None or user.root_folder_id is None:
        raise Unauthenticated()
    if not segments:
        return Target([], Node(kind="root", href=PREFIX, name=""), None, "")
    area = segments[0]
    if area not in AREAS:
        return Target(segments, None, None, segments[-1])
    if area == "files":
        return _walk(db, actor, user.root_folder_id, ["files"], segments[1:], "files")
    if len(segments) == 1:
        node = Node(kind="area", href=href_of(segments, True), name=area, area=area)
        return Target(segments, node, None, area)
    if area == "shared":
        entry = shared_entries(db, actor).get(segments[1])
        if entry is None:
            return Target(segments, None, None, segments[-1])
        kind, item_id = entry
        try:
            if kind == "folder":
                folder, _ = get_folder_for(db, actor, item_id, Level.VIEW)
                return _walk(db, actor, folder.id, segments[:2], segments[2:], "shared")
            doc, folder, level = get_document_for(db, actor, item_id, Level.VIEW)
        except NotFound:
            return Target(segments, None, None, segments[-1])
        if len(segments) > 2:
            return Target(segments, None, None, segments[-1])
        version = (
            db.get(DocumentVersion, doc.current_version_id) if doc.current_version_id else None
        )
        node = document_node(doc, version, segments, "shared", level, -doc.id, "")
        node.ns_href = node.href
        return Target(segments, node, None, segments[1])
    if area == "versions":
        return _resolve_versions(db, actor, segments)
    return _resolve_trash(db, actor, segments)


def _resolve_versions(db: Session, actor: Actor, segments: list[str]) -> Target:
    try:
        doc_id = int(segments[1])
        doc, _, level = get_document_for(db, actor, doc_id, Level.VIEW)
    except (ValueError, NotFound):
        return Target(segments, None, None, segments[-1])
    coll = Node(
        kind="versions",
        href=href_of(segments[:2], True),
        name=segments[1],
        area="versions",
        item_id=doc.id,
        owner_id=doc.owner_id,
        created=doc.created_at,
        modified=doc.updated_at,
        level=min(level, Level.VIEW),
        doc=doc,
    )
    if len(segments) == 2:
        return Target(segments, coll, None, segments[1])
    if len(segments) > 3 or not segments[2].startswith("v") or not segments[2][1:].isdigit():
        return Target(segments, None, None, segments[-1])
    version = db.scalar(
        select(DocumentVersion).where(
            DocumentVersion.document_id == doc.id,
            DocumentVersion.version_number == int(segments[2][1:]),
        )
    )
    if version is None:
        return Target(segments, None, coll, segments[2])
    return Target(segments, version_node(doc, version, segments[:2]), coll, segments[2])


def version_node(doc: Document, version: DocumentVersion, base: list[str]) -> Node:
    """A read-only node for one version of a document."""
    name = f"v{version.version_number}"
    return Node(
        kind="version",
        href=href_of([*base, name], False),
        name=name,
        area="versions",
        item_id=version.id,
        owner_id=doc.owner_id,
        created=version.created_at,
        modified=version.created_at,
        size=version.size_bytes,
        mime=doc.mime_type,
        version_id=version.id,
        checksum=version.checksum_sha256,
        level=Level.VIEW,
        document_id=doc.id,
    )


def _resolve_trash(db: Session, actor: Actor, segments: list[str]) -> Target:
    entry = segments[1]
    kind = {"d": "document", "f": "folder"}.get(entry[:1])
    number, _, _ = entry[1:].partition("-")
    if kind is None or not number.isdigit() or len(segments) > 2:
        return Target(segments, None, None, segments[-1])
    try:
        if kind == "document":
            doc, _, _ = get_document_for(db, actor, int(number), Level.OWNER, include_deleted=True)
            if (
                not (doc.is_deleted and doc.trash_root)
                or trash_name(kind, doc.id, doc.name) != entry
            ):
                raise NotFound()
            version = (
                db.get(DocumentVersion, doc.current_version_id) if doc.current_version_id else None
            )
            node = document_node(doc, version, segments, "trash", Level.VIEW, 0, "")
            node.kind = "trash_document"
            return Target(segments, node, None, entry)
        folder, _ = get_folder_for(db, actor, int(number), Level.OWNER, include_deleted=True)
        if (
            not (folder.is_deleted and folder.trash_root)
            or trash_name(kind, folder.id, folder.name) != entry
        ):
            raise NotFound()
    except NotFound:
        return Target(segments, None, None, entry)
    node = folder_node(folder, segments, "trash", Level.VIEW, 0, "")
    node.kind = "trash_folder"
    return Target(segments, node, None, entry)
