"""Purging trashed items for good: set-based deletes that release quota and blob references.

The caller holds the row locks of what it purges (the document rows, or the trash-root
folder), so a concurrent restore either happens first or finds nothing to restore.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from docstore.audit.service import Action, record
from docstore.changes import service as changes
from docstore.context import Actor
from docstore.documents.models import Document, DocumentVersion
from docstore.folders import repository as folder_repo
from docstore.folders.models import Folder
from docstore.retention.release import Released, as_removed, chunked, record_many, release
from docstore.retention.service import RETURNING
from docstore.users.models import User


def purge_documents(db: Session, actor: Actor, doc_ids: Sequence[int], now: datetime) -> Released:
    """Delete documents with all their versions; quota and blob references go back."""
    out = Released()
    for chunk in chunked(sorted(set(doc_ids))):
        docs = db.execute(
            select(Document.id, Document.owner_id, Document.name, Document.folder_id, Folder.path)
            .join(Folder, Folder.id == Document.folder_id)
            .where(Document.id.in_(chunk))
        ).all()
        if not docs:
            continue
        ids = [d.id for d in docs]
        owner_of = {d.id: d.owner_id for d in docs}
        db.execute(
            update(Document)
            .where(Document.id.in_(ids))
            .values(current_version_id=None)
            .execution_options(synchronize_session=False)
        )
        removed = as_removed(
            db.execute(
                delete(DocumentVersion)
                .where(DocumentVersion.document_id.in_(ids))
                .returning(*RETURNING)
                .execution_options(synchronize_session=False)
            )
        )
        released = release(db, removed, owner_of, now)
        released.documents = len(ids)
        out.add(released)
        db.execute(
            delete(Document)
            .where(Document.id.in_(ids))
            .execution_options(synchronize_session=False)
        )
        sizes: dict[int, int] = {}
        for r in removed:
            sizes[r.document_id] = sizes.get(r.document_id, 0) + r.size_bytes
        record_many(db, actor, Action.PURGE, [
            {"document_id": d.id, "owner_id": d.owner_id,
             "details": {"name": d.name, "folder_id": d.folder_id,
                         "size_bytes": sizes.get(d.id, 0)}}
            for d in docs
        ])  # fmt: skip
        for d in docs:
            changes.purged(db, actor, changes.Item("document", d.id, d.owner_id, d.path))
    return out


def purge_folder(db: Session, actor: Actor, folder: Folder, now: datetime) -> Released:
    """Delete a trashed folder, its subtree and every document in it.

    Items below it that have their own trash entry (deleted before the folder was) stay in
    the trash: they move to the owner's root, where a restore would bring them anyway.
    """
    entry_id, name, parent_id, owner_id = folder.id, folder.name, folder.parent_id, folder.owner_id
    changes.purged(db, actor, changes.folder_item(folder))
    owner = db.get_one(User, owner_id)
    assert owner.root_folder_id is not None
    root = db.get_one(Folder, owner.root_folder_id)
    like = folder_repo.subtree_like(folder.path)
    own_entries = list(
        db.scalars(
            select(Folder)
            .where(Folder.path.like(like), Folder.trash_root.is_(True), Folder.id != entry_id)
            .order_by(Folder.path)
        )
    )
    moved: list[str] = []
    for entry in own_entries:
        if any(entry.path.startswith(p) for p in moved):
            continue  # it moves with an enclosing entry
        old = entry.path
        folder_repo.rewrite_subtree(db, old, f"{root.path}{entry.id}/")
        db.execute(
            update(Folder)
            .where(Folder.id == entry.id)
            .values(parent_id=root.id)
            .execution_options(synchronize_session=False)
        )
        moved.append(old)
    subtree = select(Folder.id).where(Folder.path.like(like))
    db.execute(
        update(Document)
        .where(Document.folder_id.in_(subtree), Document.trash_root.is_(True))
        .values(folder_id=root.id)
        .execution_options(synchronize_session=False)
    )
    # Everything still below the folder goes, live or not: no document can vanish through
    # the folders' ON DELETE CASCADE without its quota being released.
    doc_ids = list(db.scalars(select(Document.id).where(Document.folder_id.in_(subtree))))
    out = purge_documents(db, actor, doc_ids, now)
    folders = int(db.scalar(select(func.count()).select_from(subtree.subquery())) or 0)
    db.execute(
        delete(Folder).where(Folder.path.like(like)).execution_options(synchronize_session=False)
    )
    record(
        db,
        actor,
        Action.PURGE,
        folder_id=entry_id,
        owner_id=owner_id,
        details={
            "name": name,
            "parent_id": parent_id,
            "folders": folders,
            "documents": out.documents,
            "size_bytes": out.bytes,
        },
    )
    db.expire_all()
    return out
