"""What a group change does to shares: a membership change changes the grants of every
owner who shared with the group, and deleting a group ends its shares.

The grant cache is invalidated per owner (sharing/runtime.py): a share to a group lies on
items of the owners who made it, so a membership change bumps each of their generations
before the change commits, exactly as a revoke of a direct share bumps its owner's. The
caller holds the group's row lock (`groups.repository.locked`), which a new share to the
group takes too, so the owners read here are all the owners whose entries could name the
group's members.
"""

from __future__ import annotations

from sqlalchemy import delete, select, union
from sqlalchemy.orm import Session

from docstore.audit.service import Action, record
from docstore.changes import service as changes
from docstore.context import Actor
from docstore.db import utcnow
from docstore.documents.models import Document
from docstore.folders.models import Folder
from docstore.sharing.models import Share
from docstore.sharing.permissions import Level
from docstore.sharing.runtime import grants_changed


def owners_sharing_with(db: Session, group_id: int) -> list[int]:
    """The owners of the items with an active share to the group."""
    on_documents = (
        select(Document.owner_id)
        .join(Share, Share.document_id == Document.id)
        .where(Share.group_id == group_id, Share.is_active.is_(True))
    )
    on_folders = (
        select(Folder.owner_id)
        .join(Share, Share.folder_id == Folder.id)
        .where(Share.group_id == group_id, Share.is_active.is_(True))
    )
    return sorted(db.scalars(union(on_documents, on_folders)))


def membership_changed(db: Session, group_id: int, *, strict: bool) -> None:
    """Call before a membership change commits. `strict` (someone loses access): fail with
    503 `cache_unavailable` if the caches cannot be told, so nothing commits."""
    for owner_id in owners_sharing_with(db, group_id):
        grants_changed(db, owner_id, strict=strict)


def end_shares(db: Session, actor: Actor, group_id: int, group_name: str) -> int:
    """End every share to a group being deleted (audited as UNSHARE); how many were active."""
    membership_changed(db, group_id, strict=True)
    seen = changes.watch(db, changes.shared_items(db, Share.group_id == group_id))
    rows = db.execute(
        select(Share, Document.owner_id, Folder.owner_id)
        .outerjoin(Document, Document.id == Share.document_id)
        .outerjoin(Folder, Folder.id == Share.folder_id)
        .where(Share.group_id == group_id, Share.is_active.is_(True))
        .order_by(Share.id)
    ).all()
    for share, doc_owner, folder_owner in rows:
        record(
            db,
            actor,
            Action.UNSHARE,
            document_id=share.document_id,
            folder_id=share.folder_id,
            share_id=share.id,
            owner_id=doc_owner if doc_owner is not None else folder_owner,
            details={
                "grantee": f"group:{group_id}",
                "kind": "group",
                "group_id": group_id,
                "group_name": group_name,
                "permission": Level(share.permission).name,
                "reason": "group_deleted",
                "at": utcnow().isoformat(),
            },
        )
    db.execute(delete(Share).where(Share.group_id == group_id))
    changes.settle(db, actor, seen)
    return len(rows)


settle = changes.settle


def watch_group(db: Session, group_id: int) -> list[changes.Visibility]:
    """Who sees each item shared with the group, before a membership change (then
    `changes.settle`: `access_gained` / `access_lost` for the member who came or went)."""
    return changes.watch(db, changes.shared_items(db, Share.group_id == group_id))
