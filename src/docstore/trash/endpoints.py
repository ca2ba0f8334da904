"""Trash endpoints: list the caller's trash, purge one entry or all of it."""

from __future__ import annotations

from fastapi import APIRouter, Query, Response, status

from docstore.deps import DB, CurrentActor
from docstore.pagination import DEFAULT_LIMIT, MAX_LIMIT
from docstore.schemas import Id, problems
from docstore.trash import service
from docstore.trash.schemas import TrashPage

router = APIRouter(prefix="/trash", tags=["trash"])


@router.get("", response_model=TrashPage, responses=problems(400, 401))
def list_trash(
    actor: CurrentActor,
    db: DB,
    limit: int = Query(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT),
    cursor: str | None = None,
) -> TrashPage:
    """The caller's trashed items, most recently deleted first."""
    return service.list_trash(db, actor, limit=limit, cursor=cursor)


@router.delete("", status_code=status.HTTP_204_NO_CONTENT, responses=problems(401))
def empty_trash(actor: CurrentActor, db: DB) -> Response:
    """Purge the whole trash: versions removed, quota released."""
    service.empty(db, actor)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.delete(
    "/folders/{folder_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problems(401, 403, 404),
)
def purge_folder(folder_id: Id, actor: CurrentActor, db: DB) -> Response:
    """Purge a trashed folder and everything that went to the trash with it."""
    service.purge_folder_entry(db, actor, folder_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.delete(
    "/{document_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problems(401, 403, 404),
)
def purge_document(document_id: Id, actor: CurrentActor, db: DB) -> Response:
    """Purge a trashed document: its versions are removed and its quota released."""
    service.purge_document(db, actor, document_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
