"""Comment endpoints: list (VIEW) and add (COMMENT)."""

from __future__ import annotations

from fastapi import APIRouter, Query, status

from docstore.comments import service
from docstore.comments.schemas import CommentIn, CommentOut, CommentPage
from docstore.deps import DB, CurrentActor
from docstore.pagination import DEFAULT_LIMIT, MAX_LIMIT
from docstore.schemas import Id, problems

router = APIRouter(prefix="/documents/{document_id}/comments", tags=["comments"])


@router.get("", response_model=CommentPage, responses=problems(400, 401, 404))
def list_comments(
    document_id: Id,
    actor: CurrentActor,
    db: DB,
    limit: int = Query(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT),
    cursor: str | None = None,
) -> CommentPage:
    """The document's comments, oldest first (needs VIEW)."""
    items, next_cursor = service.list_comments(db, actor, document_id, limit, cursor)
    return CommentPage(items=items, next_cursor=next_cursor)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=CommentOut,
    responses=problems(400, 401, 403, 404, 422),
)
def add_comment(document_id: Id, body: CommentIn, actor: CurrentActor, db: DB) -> CommentOut:
    """Comment on the document, optionally on one version (needs COMMENT)."""
    return service.add_comment(db, actor, document_id, body.body, body.version_id)
