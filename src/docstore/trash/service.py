"""The trash: what the caller deleted, purge by hand, and the automatic purge after N days.

Trash entries are the items a user deleted (`trash_root`); what went with a deleted folder
shares its `deleted_at` and comes back (or goes) with it. Restoring lives with documents
and folders (`POST /documents/{id}/restore`, `POST /folders/{id}/restore`).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from docstore.context import Actor, system_actor
from docstore.db import Database, utcnow
from docstore.documents.models import Document, DocumentVersion
from docstore.errors import BadRequest, NotFound, Unauthenticated
from docstore.folders.models import Folder
from docstore.pagination import decode_cursor, encode_cursor
from docstore.retention.release import Released, in_transaction
from docstore.sharing.permissions import Level, get_document_for, get_folder_for
from docstore.trash.purge import purge_documents, purge_folder
from docstore.trash.schemas import TrashItem, TrashPage

log = logging.getLogger(__name__)

# Sort rank of each kind among items deleted at the same instant: folders first.
_RANK = {"document": 0, "folder": 1}
PURGE_BATCH_DOCUMENTS = 500
PURGE_BATCH_FOLDERS = 20


def _owner_id(actor: Actor) -> int:
    if actor.user is None:
        raise Unauthenticated()
    return actor.user.id


def _after(col_deleted: Any, col_id: Any, rank: int, cur: dict[str, Any]) -> Any:
    """Rows after the cursor in (deleted_at DESC, rank DESC, id DESC) order."""
    at = datetime.fromisoformat(cur["d"])
    if rank < cur["k"]:
        return col_deleted <= at
    if rank > cur["k"]:
        return col_deleted < at
    return or_(col_deleted < at, and_(col_deleted == at, col_id < cur["i"]))


def _check_cursor(raw: str | None) -> dict[str, Any] | None:
    cur = decode_cursor(raw)
    if cur is None:
        return None
    ok = isinstance(cur.get("d"), str) and cur.get("k") in (0, 1) and isinstance(cur.get("i"), int)
    if ok:
        try:
            at = datetime.fromisoformat(cur["d"])
        except ValueError:
            ok = False
        else:
            ok = at.tzinfo is not None
    if not ok:
        raise BadRequest("The cursor is not valid.")
    return cur


def list_trash(db: Session, actor: Actor, *, limit: int, cursor: str | None) -> TrashPage:
    """A page of the caller's trash entries, most recently deleted first."""
    owner_id = _owner_id(actor)
    cur = _check_cursor(cursor)
    docs: Any = (
        select(
            Document.id,
            Document.name,
            Document.deleted_at,
            Document.folder_id.label("parent_id"),
            DocumentVersion.size_bytes,
        )
        .outerjoin(DocumentVersion, DocumentVersion.id == Document.current_version_id)
        .where(
            Document.owner_id == owner_id,
            Document.is_deleted.is_(True),
            Document.trash_root.is_(True),
        )
    )
    folders: Any = select(
        Folder.id, Folder.name, Folder.deleted_at, Folder.parent_id.label("parent_id")
    ).where(Folder.owner_id == owner_id, Folder.is_deleted.is_(True), Folder.trash_root.is_(True))
    if cur is not None:
        docs = docs.where(_after(Document.deleted_at, Document.id, _RANK["document"], cur))
        folders = folders.where(_after(Folder.deleted_at, Folder.id, _RANK["folder"], cur))
    docs = docs.order_by(Document.deleted_at.desc(), Document.id.desc()).limit(limit + 1)
    folders = folders.order_by(Folder.deleted_at.desc(), Folder.id.desc()).limit(limit + 1)
    items = [
        TrashItem(
            kind="document",
            id=r.id,
            name=r.name,
            deleted_at=r.deleted_at,
            original_parent_id=r.parent_id,
            size_bytes=r.size_bytes,
        )
        for r in db.execute(docs)
    ] + [
        TrashItem(
            kind="folder",
            id=r.id,
            name=r.name,
            deleted_at=r.deleted_at,
            original_parent_id=r.parent_id,
        )
        for r in db.execute(folders)
    ]
    items.sort(key=lambda i: (i.deleted_at, _RANK[i.kind], i.id), reverse=True)
    next_cursor = None
    if len(items) > limit:
        items = items[:limit]
        last = items[-1]
        next_cursor = encode_cursor({"d": last.deleted_at, "k": _RANK[last.kind], "i": last.id})
    return TrashPage(items=items, next_cursor=next_cursor)


def purge_document(db: Session, actor: Actor, document_id: int) -> Released:
    """Purge one trashed document for good (owner only); 404 when it is not a trash entry."""
    doc, _, _ = get_document_for(
        db, actor, document_id, Level.OWNER, for_update=True, include_deleted=True
    )
    if not (doc.is_deleted and doc.trash_root):
        raise NotFound("This document is not in the trash.")
    out = purge_documents(db, actor, [doc.id], utcnow())
    db.expire_all()
    return out


def purge_folder_entry(db: Session, actor: Actor, folder_id: int) -> Released:
    """Purge a trashed folder and what went with it (owner only)."""
    folder, _ = get_folder_for(
        db, actor, folder_id, Level.OWNER, for_update=True, include_deleted=True
    )
    if not (folder.is_deleted and folder.trash_root):
        raise NotFound("This folder is not in the trash.")
    return purge_folder(db, actor, folder, utcnow())


def empty(db: Session, actor: Actor) -> Released:
    """Purge every entry of the caller's trash."""
    owner_id = _owner_id(actor)
    now = utcnow()
    doc_ids = list(
        db.scalars(
            select(Document.id)
            .where(
                Document.owner_id == owner_id,
                Document.is_deleted.is_(True),
                Document.trash_root.is_(True),
            )
            .order_by(Document.id)
            .with_for_update()
        )
    )
    out = purge_documents(db, actor, doc_ids, now)
    released, _ = _purge_folders(db, actor, _trashed_folders(owner_id=owner_id), now)
    out.add(released)
    db.expire_all()
    return out


def _trashed_folders(*, owner_id: int | None = None, before: datetime | None = None) -> Any:
    stmt = select(Folder.id).where(Folder.is_deleted.is_(True), Folder.trash_root.is_(True))
    if owner_id is not None:
        stmt = stmt.where(Folder.owner_id == owner_id)
    if before is not None:
        stmt = stmt.where(Folder.deleted_at < before)
    return stmt.order_by(Folder.deleted_at, Folder.id)


def _purge_folders(db: Session, actor: Actor, ids_stmt: Any, now: datetime) -> tuple[Released, int]:
    """Purge the listed trash-root folders, each re-checked under its row lock."""
    out = Released()
    count = 0
    for folder_id in list(db.scalars(ids_stmt)):
        folder = db.scalar(
            select(Folder)
            .where(Folder.id == folder_id, Folder.is_deleted.is_(True), Folder.trash_root.is_(True))
            .with_for_update(skip_locked=True)
        )
        if folder is not None:
            out.add(purge_folder(db, actor, folder, now))
            count += 1
    return out, count


def purge_expired(
    database: Database, retention_days: int, *, now: datetime | None = None
) -> dict[str, Any]:
    """Purge trash entries deleted more than `retention_days` ago (the trash-purge job).

    `now` is the clock: tests pass a later time instead of waiting a month. Each batch is
    its own transaction; rows another transaction holds (a restore under way) are skipped.
    """
    now = now or utcnow()
    cutoff = now - timedelta(days=retention_days)
    actor = system_actor()
    total = Released()
    folders = 0

    def purge_batch(db: Session) -> Released | None:
        ids = list(
            db.scalars(
                select(Document.id)
                .where(
                    Document.is_deleted.is_(True),
                    Document.trash_root.is_(True),
                    Document.deleted_at < cutoff,
                )
                .order_by(Document.id)
                .limit(PURGE_BATCH_DOCUMENTS)
                .with_for_update(skip_locked=True)
            )
        )
        return purge_documents(db, actor, ids, now) if ids else None

    while (out := in_transaction(database, purge_batch)) is not None:
        total.add(out)
    while True:
        with database.transaction() as db:
            batch = _trashed_folders(before=cutoff).limit(PURGE_BATCH_FOLDERS)
            out, count = _purge_folders(db, actor, batch, now)
            if count == 0:
                break
            total.add(out)
            folders += count
    result = {
        "documents": total.documents,
        "folders": folders,
        "versions": total.versions,
        "bytes_released": total.bytes,
        "blobs_unreferenced": total.blobs_unreferenced,
    }
    if total.documents or folders:
        log.info("trash purge: %s", result)
    return result
