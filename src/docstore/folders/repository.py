"""Queries on the folder tree."""

from __future__ import annotations

from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import (
    Select,
    bindparam,
    exists,
    false,
    func,
    literal,
    literal_column,
    null,
    select,
    update,
)
from sqlalchemy.orm import Session

from docstore.db.sql import api_time, json_object
from docstore.documents.models import Document, DocumentVersion
from docstore.folders.models import Folder
from docstore.folders.schemas import ChildOut
from docstore.pagination import after

# Live rows are filtered with `is_deleted == false()`, which renders `= 0` / `= false`: the
# live-name unique indexes are partial (WHERE is_deleted = 0), and SQLite only uses one when
# the query repeats that term; `IS 0` (what `.is_(False)` renders) made it sort the folder.

# A listing row is one column: the `ChildOut` JSON object the database built (`_child_entry`,
# keys from `ChildOut`'s fields). The page's cursor is read from its last entry.
ListingSelect = Select[str]


def name_taken(
    db: Session,
    folder_id: int,
    name: str,
    *,
    except_folder: int | None = None,
    except_document: int | None = None,
) -> bool:
    """Whether a live folder or document in `folder_id` already has `name`."""
    stmt = _name_taken_statement(except_folder is not None, except_document is not None)
    params = {
        "folder_id": folder_id,
        "name": name,
        "except_folder": except_folder,
        "except_document": except_document,
    }
    return bool(db.scalar(stmt, params))


@cache
def _name_taken_statement(except_folder: bool, except_document: bool) -> Select[bool]:
    # Built once per shape (every upload and rename runs it): building the statement cost
    # more CPU than running it (see bench/PROFILE.md, session 3).
    f = select(Folder.id).where(
        Folder.parent_id == bindparam("folder_id"),
        Folder.name == bindparam("name"),
        Folder.is_deleted == false(),
    )
    if except_folder:
        f = f.where(Folder.id != bindparam("except_folder"))
    d = select(Document.id).where(
        Document.folder_id == bindparam("folder_id"),
        Document.name == bindparam("name"),
        Document.is_deleted == false(),
    )
    if except_document:
        d = d.where(Document.id != bindparam("except_document"))
    return select(exists(f) | exists(d))


def children_named(db: Session, folder_id: int, names: set[str]) -> tuple[dict[str, int], set[str]]:
    """Which of `names` the live children of `folder_id` have: subfolders (name -> id) and
    documents, in one statement (`name_taken` for many names at once; a batch upload asks
    once per folder, under the folder lock)."""
    found: dict[str, int] = {}
    documents: set[str] = set()
    if not names:
        return found, documents
    params = {"folder_id": folder_id, "names": sorted(names)}
    for kind, item_id, name in db.execute(_CHILDREN_NAMED, params):
        if kind == "f":
            found[name] = item_id
        else:
            documents.add(name)
    return found, documents


_CHILDREN_NAMED: Any = (
    select(literal_column("'f'"), Folder.id, Folder.name)
    .where(
        Folder.parent_id == bindparam("folder_id"),
        Folder.name.in_(bindparam("names", expanding=True)),
        Folder.is_deleted == false(),
    )
    .union_all(
        select(literal_column("'d'"), Document.id, Document.name).where(
            Document.folder_id == bindparam("folder_id"),
            Document.name.in_(bindparam("names", expanding=True)),
            Document.is_deleted == false(),
        )
    )
)


def lock(db: Session, folder_id: int) -> Folder | None:
    """Take the folder's row lock (PostgreSQL): serialises name checks among its children.

    FOR NO KEY UPDATE, not FOR UPDATE: lockers still exclude each other, but the foreign-key
    checks of rows that point at the folder (KEY SHARE) do not wait for it. A version save
    holds the owner's `users` row (quota) and then, updating its document row a second time,
    KEY SHAREs the folder; a document being created there held the folder FOR UPDATE and
    then waited for that `users` row: a deadlock, and a 503 for one of them.

    On SQLite every write transaction already holds the database lock (BEGIN IMMEDIATE).
    """
    return db.scalar(_LOCK, {"folder_id": folder_id})


_LOCK = select(Folder).where(Folder.id == bindparam("folder_id")).with_for_update(key_share=True)


def subtree_like(path: str) -> str:
    """LIKE pattern for a folder and everything below it (paths hold only digits and '/')."""
    return path + "%"


def rewrite_subtree(db: Session, old_prefix: str, new_prefix: str) -> int:
    """Move a subtree: every path under `old_prefix` gets `new_prefix`, in one statement."""
    from sqlalchemy import func

    result = db.execute(
        update(Folder)
        .where(Folder.path.like(subtree_like(old_prefix)))
        .values(path=literal(new_prefix) + func.substr(Folder.path, len(old_prefix) + 1))
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def child_folders(
    parent_id: int, order_by: str, cursor: dict[str, Any] | None, limit: int
) -> tuple[ListingSelect, dict[str, Any]]:
    """Live subfolders of `parent_id` as listing rows (`ListingSelect`), in page order,
    after the cursor: the statement and its parameters.

    Plain columns, not ORM objects: a listing page is up to 1,000 rows that nothing
    changes, and the identity map would cost more than the query.
    """
    position = _after_params(cursor, "f", order_by)
    params = {"parent_id": parent_id, "limit": limit, **position}
    return _child_folders_statement(order_by, bool(position)), params


def child_documents(
    folder_id: int, order_by: str, cursor: dict[str, Any] | None, limit: int
) -> tuple[ListingSelect, dict[str, Any]]:
    """Live documents in `folder_id` as listing rows (`ListingSelect`), in page order, after
    the cursor (one statement: the size comes from a join, not a second query)."""
    position = _after_params(cursor, "d", order_by)
    params = {"folder_id": folder_id, "limit": limit, **position}
    return _child_documents_statement(order_by, bool(position)), params


def _after_params(cursor: dict[str, Any] | None, kind: str, order_by: str) -> dict[str, Any]:
    """The cursor's position as `pagination.after` binds it, when it is in `kind`'s part
    of the listing (folders "f", then documents "d"); else nothing."""
    if cursor is None or cursor.get("p") != kind:
        return {}
    return {"after_value": _value(cursor, order_by), "after_id": cursor["i"]}


def _child_entry(**columns: Any) -> Any:
    """A listing entry as the database's JSON object: its keys are `ChildOut`'s fields, in
    their order, taken from the model (a field without a column here fails at build)."""
    missing = ChildOut.model_fields.keys() - columns.keys()
    extra = columns.keys() - ChildOut.model_fields.keys()
    if missing or extra:
        raise ValueError(f"listing entry vs ChildOut: missing {missing}, extra {extra}")
    return json_object({key: columns[key] for key in ChildOut.model_fields})


# The listing statements are built once per shape (order, with or without a cursor):
# building one cost 0.37 ms, against ~3 ms to run it for 1,000 rows.
@cache
def _child_folders_statement(order_by: str, after_cursor: bool) -> ListingSelect:
    col: Any = Folder.name if order_by == "name" else Folder.updated_at
    desc = order_by != "name"
    entry = _child_entry(
        kind=literal_column("'folder'"),
        id=Folder.id,
        name=Folder.name,
        owner_id=Folder.owner_id,
        created_at=api_time(Folder.created_at),
        updated_at=api_time(Folder.updated_at),
        size_bytes=null(),
        mime_type=null(),
        current_version_id=null(),
    )
    stmt = select(entry.label("entry")).where(
        Folder.parent_id == bindparam("parent_id"), Folder.is_deleted == false()
    )
    if after_cursor:
        stmt = stmt.where(after(col, Folder.id, desc))
    order = (col.desc(), Folder.id.desc()) if desc else (col.asc(), Folder.id.asc())
    return stmt.order_by(*order).limit(bindparam("limit"))


@cache
def _child_documents_statement(order_by: str, after_cursor: bool) -> ListingSelect:
    col: Any = Document.name if order_by == "name" else Document.updated_at
    desc = order_by != "name"
    stmt = (
        select(
            _child_entry(
                kind=literal_column("'document'"),
                id=Document.id,
                name=Document.name,
                owner_id=Document.owner_id,
                created_at=api_time(Document.created_at),
                updated_at=api_time(Document.updated_at),
                size_bytes=func.coalesce(DocumentVersion.size_bytes, 0),
                mime_type=Document.mime_type,
                current_version_id=Document.current_version_id,
            ).label("entry")
        )
        .outerjoin(DocumentVersion, DocumentVersion.id == Document.current_version_id)
        .where(Document.folder_id == bindparam("folder_id"), Document.is_deleted == false())
    )
    if after_cursor:
        stmt = stmt.where(after(col, Document.id, desc))
    order = (col.desc(), Document.id.desc()) if desc else (col.asc(), Document.id.asc())
    return stmt.order_by(*order).limit(bindparam("limit"))


def _value(cursor: dict[str, Any], order_by: str) -> Any:
    value = cursor.get("v")
    if order_by == "updated_at":
        return datetime.fromisoformat(str(value))
    return str(value)
