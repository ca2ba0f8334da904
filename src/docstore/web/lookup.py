"""Names the pages show for ids the JSON API returns (owners, authors, folders, documents).

Every answer is scoped to what the caller may see: an item's name only with VIEW on it, a
person's name only when the two are linked by a share or the person wrote a version or a
comment of a document the caller can read. An id outside that is simply left out.
"""

from __future__ import annotations

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from docstore.comments.models import Comment
from docstore.context import Actor
from docstore.documents.models import Document, DocumentVersion
from docstore.errors import DocstoreError
from docstore.folders.models import Folder
from docstore.groups.models import GroupMember
from docstore.sharing.models import Share
from docstore.sharing.permissions import get_document_for, grantee, member_groups, readable
from docstore.users.models import User

MAX_IDS = 200


def parse_ids(raw: str | None) -> list[int]:
    """Comma-separated integer ids (at most MAX_IDS; anything else ignored)."""
    ids: list[int] = []
    for part in (raw or "").split(","):
        part = part.strip()
        if part.isdigit() and len(part) < 19:
            ids.append(int(part))
    return list(dict.fromkeys(ids))[:MAX_IDS]


def folder_names(db: Session, actor: Actor, ids: list[int]) -> dict[int, str]:
    """Names of the folders the caller can see (their own trashed ones included)."""
    if not ids:
        return {}
    seen = readable(actor, Folder, include_deleted=True)
    rows = db.execute(select(Folder.id, Folder.name).where(Folder.id.in_(ids), seen))
    return {folder_id: name for folder_id, name in rows}


def document_names(db: Session, actor: Actor, ids: list[int]) -> dict[int, str]:
    """Names of the documents the caller can see (their own trashed ones included)."""
    if not ids:
        return {}
    seen = readable(actor, Document, include_deleted=True)
    rows = db.execute(select(Document.id, Document.name).where(Document.id.in_(ids), seen))
    return {document_id: name for document_id, name in rows}


def _share_linked(db: Session, me: int, ids: list[int]) -> set[int]:
    """People who shared something with me (or a group I am in), or with whom I shared, or
    who own what I got, or who are in a group with me."""
    owners_of_shared = (
        select(Document.owner_id)
        .where(Document.id.in_(select(Share.document_id).where(grantee(me))))
        .union(
            select(Folder.owner_id).where(Folder.id.in_(select(Share.folder_id).where(grantee(me))))
        )
    )
    co_members = select(GroupMember.user_id).where(GroupMember.group_id.in_(member_groups(me)))
    rows = db.scalars(
        select(User.id).where(
            User.id.in_(ids),
            or_(
                User.id.in_(select(Share.shared_with_user_id).where(Share.created_by == me)),
                User.id.in_(select(Share.created_by).where(grantee(me))),
                User.id.in_(owners_of_shared),
                User.id.in_(co_members),
            ),
        )
    )
    return set(rows)


def _authors(db: Session, actor: Actor, document_id: int, ids: list[int]) -> set[int]:
    """People who wrote a version or a comment of a document the caller can read."""
    try:
        doc, _, _ = get_document_for(db, actor, document_id)
    except DocstoreError:
        return set()
    versions = select(DocumentVersion.created_by).where(
        and_(DocumentVersion.document_id == doc.id, DocumentVersion.created_by.in_(ids))
    )
    comments = select(Comment.author_id).where(
        and_(Comment.document_id == doc.id, Comment.author_id.in_(ids))
    )
    return {i for i in db.scalars(versions.union(comments)) if i is not None} | {doc.owner_id}


def user_names(
    db: Session, actor: Actor, ids: list[int], document_id: int | None
) -> dict[int, str]:
    """Display names of the people the caller is linked with (see the module docstring)."""
    if actor.user is None or not ids:
        return {}
    me = actor.user.id
    visible = {me} | _share_linked(db, me, ids)
    if document_id is not None:
        visible |= _authors(db, actor, document_id, ids)
    wanted = [i for i in ids if i in visible]
    if not wanted:
        return {}
    rows = db.execute(select(User.id, User.name).where(User.id.in_(wanted)))
    return {uid: name for uid, name in rows}
