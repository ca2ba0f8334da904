"""Folder endpoints: create, read, list children, rename/move, delete, restore."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Query, Request, Response, status
from pydantic_core import to_json
from sqlalchemy.orm import Session

from docstore.context import Actor
from docstore.deps import DB, CurrentActor, UnitOfWork
from docstore.folders import service
from docstore.folders.schemas import ChildrenPage, FolderIn, FolderOut, FolderPatch
from docstore.pagination import DEFAULT_LIMIT, MAX_LIMIT
from docstore.schemas import problems

router = APIRouter(prefix="/folders", tags=["folders"])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=FolderOut,
    responses=problems(400, 401, 403, 404, 409, 413, 422),
)
def create_folder(body: FolderIn, actor: CurrentActor, db: DB) -> FolderOut:
    """Create a folder inside `parent_id` (null: the caller's root)."""
    return service.created_out(actor, service.create(db, actor, body.name, body.parent_id))


@router.get("/{folder_id}", response_model=FolderOut, responses=problems(401, 404))
def get_folder(folder_id: str, actor: CurrentActor, db: DB) -> FolderOut:
    """A folder, with the caller's effective permission; `root` is the caller's root."""
    folder, level = service.get(db, actor, folder_id)
    return service.folder_out(folder, level)


@router.get("/{folder_id}/children", response_model=ChildrenPage, responses=problems(400, 401, 404))
async def list_children(
    folder_id: str,
    request: Request,
    limit: int = Query(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT),
    cursor: str | None = None,
    order_by: Literal["name", "updated_at"] = "name",
) -> Response:
    """Folders first, then documents, by name or newest first; paged with `cursor`."""

    def page_json(db: Session, actor: Actor) -> bytes:
        folder, page = service.children_page(db, actor, folder_id, limit, cursor, order_by)
        # The entries are JSON already (the database wrote them): spliced in, not re-encoded.
        return b"".join(
            (
                b'{"folder":',
                to_json(folder),
                b',"items":[',
                ",".join(service.child_items(page)).encode(),
                b'],"next_cursor":',
                to_json(page.next_cursor),
                b"}",
            )
        )

    body = await UnitOfWork(request).run(page_json, read_only=True)
    return Response(body, media_type="application/json")


@router.patch(
    "/{folder_id}", response_model=FolderOut, responses=problems(400, 401, 403, 404, 409, 413, 422)
)
def update_folder(folder_id: str, body: FolderPatch, actor: CurrentActor, db: DB) -> FolderOut:
    """Rename and/or move a folder; its subtree moves with it."""
    folder = service.update_folder(
        db,
        actor,
        folder_id,
        name=body.name,
        parent_id=body.parent_id,
        move="parent_id" in body.model_fields_set,
    )
    _, level = service.get(db, actor, folder.id)
    return service.folder_out(folder, level)


@router.delete(
    "/{folder_id}", status_code=status.HTTP_204_NO_CONTENT, responses=problems(401, 403, 404)
)
def delete_folder(folder_id: str, actor: CurrentActor, db: DB) -> Response:
    """Move the folder and everything under it to the trash (owner only)."""
    service.delete(db, actor, folder_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{folder_id}/restore", response_model=FolderOut, responses=problems(401, 403, 404))
def restore_folder(folder_id: str, actor: CurrentActor, db: DB) -> FolderOut:
    """Bring a folder back from the trash, where it was or at the root; unique name."""
    return service.restore(db, actor, folder_id)
