"""Folder rules: names, ownership, moves without cycles, delete to trash, restore."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, false, select, update
from sqlalchemy.orm import Session

from docstore.audit.service import Action, record
from docstore.changes import service as changes
from docstore.context import Actor
from docstore.db import utcnow
from docstore.db.fastpath import rows
from docstore.documents.models import Document
from docstore.errors import BadRequest, Cycle, Forbidden, NameConflict, NotFound, Unauthenticated
from docstore.folders import repository as repo
from docstore.folders.models import Folder
from docstore.folders.schemas import FolderOut
from docstore.names import clean_name, unique_name
from docstore.pagination import decode_cursor, encode_cursor
from docstore.sharing.permissions import Level, creator_level, get_folder_for
from docstore.users.models import User


def create_root(db: Session, user: User) -> Folder:
    """Create a user's root folder (unnamed, no parent)."""
    root = Folder(owner_id=user.id, parent_id=None, name="", path="/", created_by=user.id)
    db.add(root)
    db.flush()
    root.path = f"/{root.id}/"
    user.root_folder_id = root.id
    db.flush()
    return root


def resolve_id(actor: Actor, folder_id: int | str | None) -> int:
    """A folder id from a request: None or 'root' mean the caller's root folder."""
    if folder_id is None or folder_id == "root":
        if actor.user is None or actor.user.root_folder_id is None:
            raise Unauthenticated() if actor.user is None else NotFound()
        return actor.user.root_folder_id
    try:
        number = int(folder_id)
    except (TypeError, ValueError):
        raise NotFound() from None
    if not -(2**63) <= number < 2**63:  # names no row (and SQLite cannot bind it)
        raise NotFound()
    return number


def ensure_free_name(
    db: Session,
    folder_id: int,
    name: str,
    *,
    except_folder: int | None = None,
    except_document: int | None = None,
) -> None:
    """409 name_conflict when a live sibling has `name`; the caller holds the folder lock."""
    if repo.name_taken(
        db, folder_id, name, except_folder=except_folder, except_document=except_document
    ):
        raise name_conflict(name)


def name_conflict(name: str) -> NameConflict:
    """409 name_conflict: a live sibling has `name`."""
    return NameConflict(f"An item named {name!r} already exists in this folder.")


def create(db: Session, actor: Actor, name: str, parent_id: int | str | None) -> Folder:
    """Create a folder; it belongs to the parent's owner, whoever creates it."""
    name = clean_name(name)
    parent, _ = get_folder_for(db, actor, resolve_id(actor, parent_id), Level.EDIT)
    repo.lock(db, parent.id)
    ensure_free_name(db, parent.id, name)
    now = utcnow()
    folder = Folder(
        owner_id=parent.owner_id,
        parent_id=parent.id,
        name=name,
        path=parent.path,  # completed with the new id below
        created_by=actor.user_id,
        created_at=now,
        updated_at=now,
    )
    db.add(folder)
    db.flush()
    folder.path = f"{parent.path}{folder.id}/"
    db.flush()
    changes.item_changed(db, actor, changes.folder_item(folder), changes.Op.CREATED)
    return folder


def get(db: Session, actor: Actor, folder_id: int | str) -> tuple[Folder, Level]:
    """A folder the caller can see, with the caller's level on it."""
    return get_folder_for(db, actor, resolve_id(actor, folder_id), Level.VIEW)


@dataclass
class Children:
    """One page of a folder's children: folders first, then documents."""

    folders: Sequence[
        Sequence[str]
    ]  # repository.child_folders rows (db.fastpath.rows): (entry JSON,)
    documents: Sequence[Sequence[str]]  # repository.child_documents rows
    next_cursor: str | None


def children(
    db: Session,
    actor: Actor,
    folder_id: int | str,
    *,
    limit: int,
    cursor: str | None,
    order_by: str,
) -> tuple[Folder, Level, Children]:
    """A page of the folder's live children."""
    folder, level = get(db, actor, folder_id)
    cur = _check_cursor(decode_cursor(cursor), order_by)
    folders: Sequence[Any] = ()
    if cur is None or cur["p"] == "f":
        # Core rows fetched all at once (db.fastpath.rows): the session's ORM result layer, and
        # fetching row by row, each cost a sixth of a 1,000-row page.
        stmt_f, params = repo.child_folders(folder.id, order_by, cur, limit + 1)
        folders = rows(db, stmt_f, params)
    documents: Sequence[Any] = ()
    room = limit + 1 - len(folders)
    if room > 0:
        doc_cursor = cur if cur and cur["p"] == "d" else None
        stmt, params = repo.child_documents(folder.id, order_by, doc_cursor, room)
        documents = rows(db, stmt, params)
    next_cursor = None
    if len(folders) + len(documents) > limit:  # one row more than the page: there is more
        if len(folders) >= limit:
            kind, last = "f", folders[limit - 1]
            folders, documents = folders[:limit], ()
        else:
            documents = documents[: limit - len(folders)]
            kind, last = "d", documents[-1]
        # One entry parsed a page, where a cursor column would cost PostgreSQL a to_char a row.
        entry = json.loads(last[0])
        value = entry["name"] if order_by == "name" else entry["updated_at"]
        next_cursor = encode_cursor({"p": kind, "v": value, "i": entry["id"], "o": order_by})
    page = Children(folders=folders, documents=documents, next_cursor=next_cursor)
    return folder, level, page


def _check_cursor(cur: dict[str, Any] | None, order_by: str) -> dict[str, Any] | None:
    if cur is None:
        return None
    if cur.get("p") not in ("f", "d") or not isinstance(cur.get("i"), int):
        raise BadRequest("The cursor is not valid.")
    if not isinstance(cur.get("v"), str) or cur.get("o", order_by) != order_by:
        raise BadRequest("The cursor is not valid.")
    return cur


def update_folder(
    db: Session,
    actor: Actor,
    folder_id: int | str,
    *,
    name: str | None = None,
    parent_id: int | str | None = None,
    move: bool = False,
) -> Folder:
    """Rename and/or move a folder; a move rewrites the subtree's paths in one statement."""
    folder, _ = get_folder_for(db, actor, resolve_id(actor, folder_id), Level.EDIT)
    if folder.parent_id is None:
        raise Forbidden("The root folder cannot be renamed or moved.")
    new_name = clean_name(name) if name is not None else folder.name
    target_id = resolve_id(actor, parent_id) if move else folder.parent_id
    now = utcnow()
    if target_id != folder.parent_id:
        target, _ = get_folder_for(db, actor, target_id, Level.EDIT)
        if target.owner_id != folder.owner_id:
            raise Forbidden("Items cannot be moved into another owner's folder.")
        if target.path.startswith(folder.path):
            raise Cycle()
        repo.lock(db, target.id)
        ensure_free_name(db, target.id, new_name, except_folder=folder.id)
        old_path, old_parent = folder.path, folder.parent_id
        seen = changes.Visibility.of(db, changes.folder_item(folder))
        new_path = f"{target.path}{folder.id}/"
        repo.rewrite_subtree(db, old_path, new_path)
        db.refresh(folder)
        folder.parent_id = target.id
        folder.name = new_name
        folder.updated_at = now
        record(
            db,
            actor,
            Action.MOVE,
            folder_id=folder.id,
            owner_id=folder.owner_id,
            details={"from_folder_id": old_parent, "to_folder_id": target.id},
        )
        db.flush()
        seen.diff(db, actor, changes.folder_item(folder), changes.Op.MOVED)
    if new_name != folder.name:
        assert folder.parent_id is not None
        repo.lock(db, folder.parent_id)
        ensure_free_name(db, folder.parent_id, new_name, except_folder=folder.id)
        old_name = folder.name
        folder.name = new_name
        folder.updated_at = now
        record(
            db,
            actor,
            Action.RENAME,
            folder_id=folder.id,
            owner_id=folder.owner_id,
            details={"old_name": old_name, "new_name": new_name},
        )
        changes.item_changed(db, actor, changes.folder_item(folder), changes.Op.UPDATED)
    db.flush()
    return folder


def delete(db: Session, actor: Actor, folder_id: int | str) -> None:
    """Move a folder and its whole subtree to the trash: one statement per table."""
    folder, _ = get_folder_for(db, actor, resolve_id(actor, folder_id), Level.OWNER)
    if folder.parent_id is None:
        raise Forbidden("The root folder cannot be deleted.")
    now = utcnow()
    changes.subtree_changed(db, actor, changes.folder_item(folder), changes.Op.DELETED)
    subtree = select(Folder.id).where(Folder.path.like(repo.subtree_like(folder.path)))
    # Items already in the trash keep their own entry (and deleted_at), so a restore of
    # this folder brings back exactly what this delete took.
    db.execute(
        update(Document)
        .where(Document.folder_id.in_(subtree), Document.is_deleted == false())
        .values(is_deleted=True, deleted_at=now, deleted_by=actor.user_id, trash_root=False)
        .execution_options(synchronize_session=False)
    )
    db.execute(
        update(Folder)
        .where(
            Folder.path.like(repo.subtree_like(folder.path)),
            Folder.is_deleted == false(),
        )
        .values(
            is_deleted=True,
            deleted_at=now,
            deleted_by=actor.user_id,
            trash_root=Folder.id == folder.id,
        )
        .execution_options(synchronize_session=False)
    )
    db.refresh(folder)
    record(
        db,
        actor,
        Action.DELETE,
        folder_id=folder.id,
        owner_id=folder.owner_id,
        details={"name": folder.name},
    )


def restore(db: Session, actor: Actor, folder_id: int | str) -> FolderOut:
    """Bring a trashed folder back with what went with it; to the root if its parent is gone.
    Only the owner may (the answer carries that level)."""
    folder, level = get_folder_for(
        db, actor, resolve_id(actor, folder_id), Level.OWNER, include_deleted=True
    )
    if not folder.is_deleted or not folder.trash_root:
        raise NotFound("This folder is not in the trash.")
    owner = db.get_one(User, folder.owner_id)
    assert folder.parent_id is not None and owner.root_folder_id is not None
    parent = db.get(Folder, folder.parent_id)
    target = parent if parent is not None and not parent.is_deleted else None
    if target is None:
        target = db.get_one(Folder, owner.root_folder_id)
    repo.lock(db, target.id)
    name = unique_name(folder.name, lambda n: repo.name_taken(db, target.id, n))
    deleted_at = folder.deleted_at
    if target.id != folder.parent_id:
        repo.rewrite_subtree(db, folder.path, f"{target.path}{folder.id}/")
        db.refresh(folder)
    subtree = select(Folder.id).where(Folder.path.like(repo.subtree_like(folder.path)))
    taken_with = and_(Folder.deleted_at == deleted_at, Folder.trash_root.is_(False))
    db.execute(
        update(Document)
        .where(
            Document.folder_id.in_(subtree),
            Document.is_deleted.is_(True),
            Document.trash_root.is_(False),
            Document.deleted_at == deleted_at,
        )
        .values(is_deleted=False, deleted_at=None, deleted_by=None)
        .execution_options(synchronize_session=False)
    )
    db.execute(
        update(Folder)
        .where(Folder.path.like(repo.subtree_like(folder.path)), taken_with)
        .values(is_deleted=False, deleted_at=None, deleted_by=None)
        .execution_options(synchronize_session=False)
    )
    folder.is_deleted = False
    folder.deleted_at = None
    folder.deleted_by = None
    folder.trash_root = False
    folder.parent_id = target.id
    folder.name = name
    folder.updated_at = utcnow()
    db.flush()
    changes.subtree_changed(db, actor, changes.folder_item(folder), changes.Op.RESTORED)
    record(
        db,
        actor,
        Action.RESTORE,
        folder_id=folder.id,
        owner_id=folder.owner_id,
        details={"name": name, "to_folder_id": target.id},
    )
    return folder_out(folder, level)


def created_out(actor: Actor, folder: Folder) -> FolderOut:
    """The API view of a folder the actor has just created, at their level on it."""
    return folder_out(folder, creator_level(actor, folder.owner_id))


def folder_out(folder: Folder, level: Level | None = None) -> FolderOut:
    """The API view of a folder."""
    return FolderOut(
        id=folder.id,
        name=folder.name,
        parent_id=folder.parent_id,
        path=folder.path,
        owner_id=folder.owner_id,
        created_at=folder.created_at,
        updated_at=folder.updated_at,
        is_deleted=folder.is_deleted,
        permission=level.name if level is not None else None,
    )


def children_page(
    db: Session, actor: Actor, folder_id: str, limit: int, cursor: str | None, order_by: str
) -> tuple[FolderOut, Children]:
    """A folder the caller can see and one page of its children."""
    folder, level, page = children(
        db, actor, folder_id, limit=limit, cursor=cursor, order_by=order_by
    )
    return folder_out(folder, level), page


def child_items(page: Children) -> list[str]:
    """A page's entries, each a `ChildOut` as JSON text, written by the database.

    A page is up to 1,000 rows: building a `ChildOut` (or even a dict) for each and encoding
    it cost more than fetching them (bench/PROFILE.md). tests/folders hold every entry to
    `ChildOut`, on SQLite and on PostgreSQL.
    """
    return [row[0] for row in (*page.folders, *page.documents)]  # row.entry, by position
