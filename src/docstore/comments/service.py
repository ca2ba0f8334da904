"""Comments: anyone who can see a document reads them; COMMENT or more adds one."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from docstore.audit.service import Action, record
from docstore.comments.models import Comment
from docstore.comments.schemas import CommentOut
from docstore.context import Actor
from docstore.db import utcnow
from docstore.documents.models import DocumentVersion
from docstore.errors import ValidationFailed
from docstore.pagination import cursor_int, page
from docstore.sharing.permissions import Level, get_document_for


def comment_out(comment: Comment) -> CommentOut:
    """The API view of a comment."""
    return CommentOut(
        id=comment.id,
        document_id=comment.document_id,
        author_id=comment.author_id,
        body=comment.body,
        created_at=comment.created_at,
        version_id=comment.version_id,
    )


def list_comments(
    db: Session, actor: Actor, document_id: int, limit: int, cursor: str | None
) -> tuple[list[CommentOut], str | None]:
    """A page of the document's comments, oldest first (VIEW)."""
    doc, _, _ = get_document_for(db, actor, document_id, Level.VIEW)
    stmt = select(Comment).where(Comment.document_id == doc.id)
    after_id = cursor_int(cursor, "i")
    if after_id is not None:
        stmt = stmt.where(Comment.id > after_id)
    rows = list(db.scalars(stmt.order_by(Comment.id).limit(limit + 1)))
    shown, next_cursor = page(rows, limit, lambda c: {"i": c.id})
    return [comment_out(c) for c in shown], next_cursor


def add_comment(
    db: Session, actor: Actor, document_id: int, body: str, version_id: int | None
) -> CommentOut:
    """Add a comment (COMMENT or more); audited as COMMENT."""
    doc, _, _ = get_document_for(db, actor, document_id, Level.COMMENT)
    text = body.strip()
    if not text:
        raise ValidationFailed("A comment needs some text.")
    if version_id is not None:
        version = db.scalar(
            select(DocumentVersion.id).where(
                DocumentVersion.id == version_id, DocumentVersion.document_id == doc.id
            )
        )
        if version is None:
            raise ValidationFailed("version_id is not a version of this document.")
    comment = Comment(
        document_id=doc.id,
        version_id=version_id,
        author_id=actor.user_id,
        body=text,
        created_at=utcnow(),
    )
    db.add(comment)
    db.flush()
    record(
        db,
        actor,
        Action.COMMENT,
        document_id=doc.id,
        owner_id=doc.owner_id,
        details={"comment_id": comment.id, "version_id": version_id},
    )
    return comment_out(comment)
