"""PROPFIND answers: the live properties of a node, dead properties from the database, and
a listing's members read in one statement per table."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from sqlalchemy import Select, bindparam, delete, false, select
from sqlalchemy.orm import Session

from docstore.context import Actor
from docstore.dav import locking
from docstore.dav.tree import (
    Node,
    document_node,
    folder_node,
    href_of,
    shared_entries,
    trash_name,
    version_node,
)
from docstore.dav.xmlio import (
    DAV,
    empty_element,
    http_date,
    iso_date,
    parse,
    propstat,
    response,
    serialise,
    status_line,
    text,
)
from docstore.db import fastpath
from docstore.documents.dav_state import DavLock, DavProperty
from docstore.documents.models import Document, DocumentVersion
from docstore.folders.models import Folder
from docstore.sharing.permissions import Level, get_document_for, get_folder_for
from docstore.trash import service as trash
from docstore.users.models import User

LIVE = (
    "resourcetype",
    "getcontentlength",
    "getcontenttype",
    "getetag",
    "getlastmodified",
    "creationdate",
    "displayname",
    "supportedlock",
    "lockdiscovery",
    "quota-available-bytes",
    "quota-used-bytes",
)
LIVE_SET = frozenset(LIVE)
SUPPORTED_LOCK = (
    "<D:supportedlock>"
    "<D:lockentry><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockentry>"
    "<D:lockentry><D:lockscope><D:shared/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockentry>"
    "</D:supportedlock>"
)
Key = tuple[str, int]  # ("d", document id) | ("f", folder id)


def key_of(node: Node) -> Key | None:
    """The dead-property owner of a node (documents and folders only)."""
    if node.kind == "document" and node.item_id is not None:
        return ("d", node.item_id)
    if node.kind == "folder" and node.item_id is not None:
        return ("f", node.item_id)
    return None


@dataclass
class Context:
    """What rendering a set of nodes needs, read once."""

    locks: list[DavLock] = field(default_factory=list)
    dead: dict[Key, list[tuple[str, str, str]]] = field(default_factory=dict)
    quota: dict[int, tuple[int, int]] = field(default_factory=dict)  # owner: (available, used)
    viewer: int | None = None  # quota properties show on the viewer's own folders only


def load_dead(
    db: Session, nodes: list[Node], parent_folder: int | None
) -> dict[Key, list[tuple[str, str, str]]]:
    """Dead properties of `nodes`: by id, or all of a folder's members in two statements."""
    out: dict[Key, list[tuple[str, str, str]]] = {}
    doc_ids = [n.item_id for n in nodes if n.kind == "document" and n.item_id is not None]
    folder_ids = [n.item_id for n in nodes if n.kind == "folder" and n.item_id is not None]
    # (statement, its parameters, whether it expands a list: only those go through the ORM;
    # the others, compiled once, run on the fast path: a depth-0 PROPFIND, rclone's after
    # each upload, reads one id, ~15 % of its CPU through an expanding IN)
    runs: list[tuple[Select[int | None, int | None, str, str, str], dict[str, Any], bool]] = []
    if parent_folder is not None:
        runs.append((_DEAD_OF_MEMBER_DOCUMENTS, {"folder_id": parent_folder}, False))
        runs.append((_DEAD_OF_MEMBER_FOLDERS, {"folder_id": parent_folder}, False))
        folder_ids = [parent_folder]
        doc_ids = []
    if len(doc_ids) == 1:
        runs.append((_DEAD_OF_DOCUMENT, {"id": doc_ids[0]}, False))
    elif doc_ids:
        runs.append((_DEAD_OF_DOCUMENTS, {"ids": doc_ids[:1000]}, True))
    if len(folder_ids) == 1:
        runs.append((_DEAD_OF_FOLDER, {"id": folder_ids[0]}, False))
    elif folder_ids:
        runs.append((_DEAD_OF_FOLDERS, {"ids": folder_ids[:1000]}, True))
    for stmt, params, expands in runs:
        found = db.execute(stmt, params) if expands else fastpath.rows(db, stmt, params)
        for doc_id, folder_id, ns, name, value in found:
            key: Key = ("d", doc_id) if doc_id is not None else ("f", folder_id or 0)
            out.setdefault(key, []).append((ns, name, value))
    return out


# Built once: rclone's PROPFIND after each upload asks for two non-DAV properties, so
# every one reads dead properties, and building the statement cost more than running it.
_DEAD_COLUMNS = select(
    DavProperty.document_id,
    DavProperty.folder_id,
    DavProperty.namespace,
    DavProperty.name,
    DavProperty.value_xml,
)
_DEAD_OF_MEMBER_DOCUMENTS = _DEAD_COLUMNS.join(
    Document, Document.id == DavProperty.document_id
).where(Document.folder_id == bindparam("folder_id"))
_DEAD_OF_MEMBER_FOLDERS = _DEAD_COLUMNS.join(Folder, Folder.id == DavProperty.folder_id).where(
    Folder.parent_id == bindparam("folder_id")
)
_DEAD_OF_DOCUMENTS = _DEAD_COLUMNS.where(
    DavProperty.document_id.in_(bindparam("ids", expanding=True))
)
_DEAD_OF_FOLDERS = _DEAD_COLUMNS.where(DavProperty.folder_id.in_(bindparam("ids", expanding=True)))
_DEAD_OF_DOCUMENT = _DEAD_COLUMNS.where(DavProperty.document_id == bindparam("id"))
_DEAD_OF_FOLDER = _DEAD_COLUMNS.where(DavProperty.folder_id == bindparam("id"))


def quota_for(db: Session, ctx: Context, owner_id: int) -> tuple[int, int]:
    """(available, used) bytes of an owner, read once per answer."""
    found = ctx.quota.get(owner_id)
    if found is None:
        user = db.get_one(User, owner_id)
        db.refresh(user)
        used = user.used_bytes
        found = (max(0, user.quota_bytes - used - user.reserved_bytes), used)
        ctx.quota[owner_id] = found
    return found


def lock_href(node: Node, lock: DavLock) -> str:
    """The href of the resource a lock was taken on."""
    if not lock.path:
        return node.ns_href or node.href
    path = "/".join(quote(s, safe="") for s in lock.path.split("/"))
    return node.ns_href + path + ("/" if lock.folder_id is not None else "")


def live_prop(db: Session, node: Node, name: str, ctx: Context) -> str | None:
    """One live property as XML, or None when the node has no such property."""
    coll = node.is_collection
    if name == "resourcetype":
        return "<D:resourcetype><D:collection/></D:resourcetype>" if coll else "<D:resourcetype/>"
    if name == "getcontentlength":
        return None if coll else f"<D:getcontentlength>{node.size}</D:getcontentlength>"
    if name == "getcontenttype":
        return None if coll else f"<D:getcontenttype>{text(node.mime)}</D:getcontenttype>"
    if name == "getetag":
        tag = node.etag
        return None if tag is None else f"<D:getetag>{text(tag)}</D:getetag>"
    if name == "getlastmodified":
        return (
            None
            if node.modified is None
            else f"<D:getlastmodified>{http_date(node.modified)}</D:getlastmodified>"
        )
    if name == "creationdate":
        return (
            None
            if node.created is None
            else f"<D:creationdate>{iso_date(node.created)}</D:creationdate>"
        )
    if name == "displayname":
        return f"<D:displayname>{text(node.name)}</D:displayname>"
    if name == "supportedlock":
        return SUPPORTED_LOCK if node.kind in ("folder", "document") else None
    if name == "lockdiscovery":
        if node.kind not in ("folder", "document"):
            return None
        active = [lk for lk in ctx.locks if locking.covers(lk, node.rel)]
        inner = "".join(locking.activelock(lk, lock_href(node, lk)) for lk in active)
        return f"<D:lockdiscovery>{inner}</D:lockdiscovery>"
    if name in ("quota-available-bytes", "quota-used-bytes"):
        if node.kind != "folder" or node.owner_id is None or node.owner_id != ctx.viewer:
            return None
        available, used = quota_for(db, ctx, node.owner_id)
        value = available if name == "quota-available-bytes" else used
        return f"<D:{name}>{value}</D:{name}>"
    return None


ALLPROP = (
    "resourcetype",
    "getcontentlength",
    "getcontenttype",
    "getetag",
    "getlastmodified",
    "creationdate",
    "displayname",
    "supportedlock",
    "lockdiscovery",
)


_COLLECTION = "<D:resourcetype><D:collection/></D:resourcetype>"
_OK = f"<D:status>{status_line(200)}</D:status></D:propstat></D:response>"


def _allprop_member(node: Node, ctx: Context, dead: str) -> str | None:
    """`render`'s allprop answer for an unlocked folder or document, built in one pass (what
    ALLPROP through `live_prop` gives, in that order, then the `dead` properties); None for
    anything else. Why: PROPFIND depth 1 renders every member of a
    folder this way, and nine `live_prop` calls per member were most of its time."""
    if node.kind not in ("folder", "document") or any(
        locking.covers(lk, node.rel) for lk in ctx.locks
    ):
        return None
    folder = node.kind == "folder"
    etag = node.etag
    return "".join(
        (
            "<D:response><D:href>",
            text(node.href),
            "</D:href><D:propstat><D:prop>",
            _COLLECTION if folder else "<D:resourcetype/>",
            "" if folder else f"<D:getcontentlength>{node.size}</D:getcontentlength>",
            "" if folder else f"<D:getcontenttype>{text(node.mime)}</D:getcontenttype>",
            "" if etag is None else f"<D:getetag>{text(etag)}</D:getetag>",
            ""
            if node.modified is None
            else f"<D:getlastmodified>{http_date(node.modified)}</D:getlastmodified>",
            ""
            if node.created is None
            else f"<D:creationdate>{iso_date(node.created)}</D:creationdate>",
            f"<D:displayname>{text(node.name)}</D:displayname>",
            SUPPORTED_LOCK,
            "<D:lockdiscovery></D:lockdiscovery>",
            dead,
            "</D:prop>",
            _OK,
        )
    )


def render(db: Session, node: Node, mode: str, names: list[tuple[str, str]], ctx: Context) -> str:
    """A node's response element for allprop, propname or the named properties."""
    key = key_of(node)
    dead = ctx.dead.get(key, []) if key is not None else []
    if mode == "propname":
        found = [empty_element(DAV, n) for n in LIVE if live_prop(db, node, n, ctx) is not None]
        found += [empty_element(ns, name) for ns, name, _ in dead]
        return response(node.href, propstat(found, 200))
    if mode == "allprop":
        fast = _allprop_member(node, ctx, "".join(value for _, _, value in dead))
        if fast is not None:
            return fast
        found = [p for n in ALLPROP if (p := live_prop(db, node, n, ctx)) is not None]
        found += [value for _, _, value in dead]
        return response(node.href, propstat(found, 200))
    ok: list[str] = []
    missing: list[str] = []
    by_name = {(ns, name): value for ns, name, value in dead}
    for ns, name in names:
        value = live_prop(db, node, name, ctx) if ns == DAV and name in LIVE_SET else None
        if value is None:
            value = by_name.get((ns, name))
        if value is None:
            missing.append(empty_element(ns, name))
        else:
            ok.append(value)
    body = (propstat(ok, 200) if ok else "") + (propstat(missing, 404) if missing else "")
    return response(node.href, body)


def members(db: Session, actor: Actor, node: Node) -> list[Node]:
    """A collection's members, as nodes."""
    if node.kind == "root":
        return [
            Node(kind="area" if a != "files" else "folder", href=href_of([a], True), name=a, area=a)
            for a in ("files", "shared", "trash", "versions")
        ]
    if node.kind == "folder" and node.item_id is not None:
        return folder_members(db, node)
    if node.kind == "area" and node.area == "shared":
        out = []
        for name, (kind, item_id) in shared_entries(db, actor).items():
            seg = ["shared", name]
            if kind == "folder":
                folder, level = get_folder_for(db, actor, item_id, Level.VIEW)
                entry = folder_node(folder, seg, "shared", level, folder.id, "")
            else:
                doc, _, level = get_document_for(db, actor, item_id, Level.VIEW)
                version = (
                    db.get(DocumentVersion, doc.current_version_id)
                    if doc.current_version_id
                    else None
                )
                entry = document_node(doc, version, seg, "shared", level, -doc.id, "")
            # Named as the share entry (unique in /dav/shared/), rooted at itself.
            entry.name, entry.ns_href = name, entry.href
            out.append(entry)
        return out
    if node.kind == "area" and node.area == "trash":
        page = trash.list_trash(db, actor, limit=10_000, cursor=None)
        out = []
        for item in page.items:
            name = trash_name(item.kind, item.id, item.name)
            coll = item.kind == "folder"
            out.append(
                Node(
                    kind="trash_folder" if coll else "trash_document",
                    href=href_of(["trash", name], coll),
                    name=name,
                    area="trash",
                    item_id=item.id,
                    created=item.deleted_at,
                    modified=item.deleted_at,
                    size=item.size_bytes or 0,
                )
            )
        return out
    if node.kind == "versions" and node.doc is not None:
        base = ["versions", str(node.doc.id)]
        rows = db.scalars(
            select(DocumentVersion)
            .where(DocumentVersion.document_id == node.doc.id)
            .order_by(DocumentVersion.version_number)
        )
        return [version_node(node.doc, v, base) for v in rows]
    return []


def folder_members(db: Session, node: Node) -> list[Node]:
    """A folder's live members: one statement for subfolders, one for documents."""
    assert node.item_id is not None
    base = node.href
    prefix = f"{node.rel}/" if node.rel else ""
    out: list[Node] = []
    # Core rows from the connection: the session's ORM result layer cost more than the
    # statement itself for 10,000 members.
    conn = db.connection()
    folders = conn.execute(
        select(Folder.id, Folder.name, Folder.owner_id, Folder.created_at, Folder.updated_at).where(
            Folder.parent_id == node.item_id, Folder.is_deleted == false()
        )
    )
    for fid, name, owner, created, updated in folders:
        out.append(
            Node(
                "folder",
                f"{base}{quote(name, safe='')}/",
                name,
                node.area,
                fid,
                owner,
                created,
                updated,
                level=node.level,
                ns_root=node.ns_root,
                rel=prefix + name,
                ns_href=node.ns_href,
            )
        )
    docs = conn.execute(
        select(
            Document.id,
            Document.name,
            Document.owner_id,
            Document.created_at,
            Document.updated_at,
            Document.mime_type,
            Document.current_version_id,
            DocumentVersion.size_bytes,
            DocumentVersion.checksum_sha256,
        )
        .outerjoin(DocumentVersion, DocumentVersion.id == Document.current_version_id)
        .where(Document.folder_id == node.item_id, Document.is_deleted == false())
    )
    for did, name, owner, created, updated, mime, vid, size, checksum in docs:
        out.append(
            Node(
                "document",
                f"{base}{quote(name, safe='')}",
                name,
                node.area,
                did,
                owner,
                created,
                updated,
                size or 0,
                mime,
                vid,
                checksum,
                node.level,
                ns_root=node.ns_root,
                rel=prefix + name,
                ns_href=node.ns_href,
            )
        )
    return out


# The PROPFIND bodies seen lately, parsed: a client asks with one body again and again
# (rclone, after each upload), and parsing it was ~4 % of the event loop's CPU under
# rclone. Small bodies only; at the bound the oldest go first.
_PROPFIND_SEEN: dict[bytes, tuple[str, list[tuple[str, str]]]] = {}
_PROPFIND_SEEN_MAX = 256
_PROPFIND_SEEN_BODY = 4096


def propfind_request(body: bytes) -> tuple[str, list[tuple[str, str]]]:
    """`parse_propfind` of a request body (well-formed XML, or 400)."""
    seen = _PROPFIND_SEEN.get(body)
    if seen is not None:
        return seen[0], list(seen[1])
    mode, names = parse_propfind(parse(body))
    if len(body) <= _PROPFIND_SEEN_BODY:
        while len(_PROPFIND_SEEN) >= _PROPFIND_SEEN_MAX:
            _PROPFIND_SEEN.pop(next(iter(_PROPFIND_SEEN)), None)
        _PROPFIND_SEEN[body] = (mode, list(names))
    return mode, names


def parse_propfind(root: ET.Element | None) -> tuple[str, list[tuple[str, str]]]:
    """('allprop' | 'propname' | 'prop', names) from a PROPFIND body; 400 when invalid."""
    from docstore.dav.xmlio import qname
    from docstore.errors import BadRequest

    if root is None:
        return "allprop", []
    if root.tag != f"{{{DAV}}}propfind":
        raise BadRequest("The body must be a DAV:propfind element.")
    for child in root:
        ns, local = qname(child.tag)
        if ns != DAV:
            continue
        if local in ("allprop", "propname"):
            return local, []
        if local == "prop":
            return "prop", [qname(p.tag) for p in child]
    raise BadRequest("DAV:propfind needs allprop, propname or prop.")


def set_dead(db: Session, key: Key, ns: str, name: str, value: str | None) -> None:
    """Set (value) or remove (None) a dead property."""
    kind, item_id = key
    col = DavProperty.document_id if kind == "d" else DavProperty.folder_id
    db.execute(
        delete(DavProperty).where(
            col == item_id, DavProperty.namespace == ns, DavProperty.name == name
        )
    )
    if value is not None:
        db.add(
            DavProperty(
                document_id=item_id if kind == "d" else None,
                folder_id=item_id if kind == "f" else None,
                namespace=ns,
                name=name,
                value_xml=value,
            )
        )
    db.flush()


def copy_dead(db: Session, source: Key, target: Key) -> None:
    """Give a copy the dead properties of its source."""
    kind, item_id = source
    col = DavProperty.document_id if kind == "d" else DavProperty.folder_id
    for prop in list(db.scalars(select(DavProperty).where(col == item_id))):
        set_dead(db, target, prop.namespace, prop.name, prop.value_xml)


def prop_value(element: ET.Element) -> str:
    """A dead property's stored form."""
    return serialise(element)


def all_names(items: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """Names in order, without repeats."""
    return list(dict.fromkeys(items))
