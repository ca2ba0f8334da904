"""Effective permission: the one place that decides who may see or change what.

Owner, else the highest active, unexpired share for the user on the document or on any
ancestor folder. Ancestors are the ids in the folder's materialized path, so the check is
one query on the (user, folder) / (user, document) share indexes whose cost grows with
folder depth, not with the number of shares.
"""

from __future__ import annotations

from enum import IntEnum

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from docstore.context import Actor
from docstore.db import utcnow
from docstore.documents.models import Document
from docstore.errors import Forbidden, NotFound
from docstore.folders.models import Folder
from docstore.sharing.models import Share


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


def _share_grant(db: Session, user_id: int, folder_path: str, document_id: int | None) -> Level:
    now = utcnow()
    targets = [Share.folder_id.in_(path_ids(folder_path))]
    if document_id is not None:
        targets.append(Share.document_id == document_id)
    best = db.scalar(
        select(func.max(Share.permission)).where(
            Share.shared_with_user_id == user_id,
            Share.is_active.is_(True),
            or_(Share.expires_at.is_(None), Share.expires_at > now),
            or_(*targets),
        )
    )
    return Level(best or 0)


def _link_grant(actor: Actor, folder_path: str, document_id: int | None) -> Level:
    link = actor.link
    if link is None or not link.is_active:
        return Level.NONE
    if link.expires_at is not None and link.expires_at <= utcnow():
        return Level.NONE
    if link.document_id is not None and link.document_id == document_id:
        return Level(link.permission)
    if link.folder_id is not None and link.folder_id in path_ids(folder_path):
        return Level(link.permission)
    return Level.NONE


def level_for(
    db: Session, actor: Actor, owner_id: int, folder_path: str, document_id: int | None
) -> Level:
    """The actor's effective level on an item given its owner and (parent) folder path."""
    if actor.user is not None:
        if actor.user.id == owner_id:
            return Level.OWNER
        level = _share_grant(db, actor.user.id, folder_path, document_id)
    else:
        level = Level.NONE
    return max(level, _link_grant(actor, folder_path, document_id))


def folder_level(db: Session, actor: Actor, folder: Folder) -> Level:
    """The actor's effective level on a folder (a share on it or any ancestor)."""
    return level_for(db, actor, folder.owner_id, folder.path, None)


def document_level(db: Session, actor: Actor, doc: Document, folder_path: str) -> Level:
    """The actor's effective level on a document in the folder with `folder_path`."""
    return level_for(db, actor, doc.owner_id, folder_path, doc.id)


def require(level: Level, needed: Level) -> None:
    """404 when the caller cannot see the item at all, 403 when they lack the level."""
    if level == Level.NONE:
        raise NotFound()
    if level < needed:
        raise Forbidden(f"This needs {needed.name} permission; you have {level.name}.")


def get_folder_for(
    db: Session,
    actor: Actor,
    folder_id: int,
    needed: Level,
    *,
    for_update: bool = False,
    include_deleted: bool = False,
) -> tuple[Folder, Level]:
    """Load a folder the actor may act on at `needed`, or raise 404/403."""
    stmt = select(Folder).where(Folder.id == folder_id)
    if for_update:
        stmt = stmt.with_for_update()
    folder = db.scalar(stmt)
    if folder is None:
        raise NotFound()
    level = folder_level(db, actor, folder)
    if folder.is_deleted and not (include_deleted and level == Level.OWNER):
        # Trashed items exist only for their owner, and only in the trash.
        raise NotFound()
    require(level, needed)
    return folder, level


def get_document_for(
    db: Session,
    actor: Actor,
    document_id: int,
    needed: Level,
    *,
    for_update: bool = False,
    include_deleted: bool = False,
) -> tuple[Document, Folder, Level]:
    """Load a document (and its folder) the actor may act on at `needed`, or raise 404/403."""
    stmt = select(Document).where(Document.id == document_id)
    if for_update:
        stmt = stmt.with_for_update()
    doc = db.scalar(stmt)
    if doc is None:
        raise NotFound()
    folder = db.get_one(Folder, doc.folder_id)
    level = document_level(db, actor, doc, folder.path)
    if doc.is_deleted and not (include_deleted and level == Level.OWNER):
        raise NotFound()
    require(level, needed)
    return doc, folder, level
