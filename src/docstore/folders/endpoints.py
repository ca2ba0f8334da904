"""Folder endpoints: create, read, list children, rename/move, delete, restore."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Query, Request, Response, status
from pydantic_core import to_json
from sqlalchemy.orm import Session

from docstore.context import Actor
from docstore.deps import DB, CurrentActor, in_request_read
from docstore.folders import service
from docstore.folders.models import Folder
from docstore.folders.schemas import ChildrenPage, FolderIn, FolderOut, FolderPatch
from docstore.folders.service import Children
from docstore.pagination import DEFAULT_LIMIT, MAX_LIMIT
from docstore.schemas import problems
from docstore.sharing.permissions import Level

router = APIRouter(prefix="/folders", tags=["folders"])


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


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=FolderOut,
    responses=problems(400, 401, 403, 404, 409, 413, 422),
)
def create_folder(body: FolderIn, actor: CurrentActor, db: DB) -> FolderOut:
    """Create a folder inside `parent_id` (null: the caller's root)."""
    folder = service.create(db, actor, body.name, body.parent_id)
    return folder_out(folder, Level.OWNER if folder.owner_id == actor.user_id else Level.EDIT)


@router.get("/{folder_id}", response_model=FolderOut, responses=problems(401, 404))
def get_folder(folder_id: str, actor: CurrentActor, db: DB) -> FolderOut:
    """A folder, with the caller's effective permission; `root` is the caller's root."""
    folder, level = service.get(db, actor, folder_id)
    return folder_out(folder, level)


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
        folder, page = children_page(db, actor, folder_id, limit, cursor, order_by)
        # The entries are JSON already (the database wrote them): spliced in, not re-encoded.
        return b"".join(
            (
                b'{"folder":',
                to_json(folder),
                b',"items":[',
                ",".join(child_items(page)).encode(),
                b'],"next_cursor":',
                to_json(page.next_cursor),
                b"}",
            )
        )

    body = await in_request_read(request, page_json)
    return Response(body, media_type="application/json")


def children_page(
    db: Session, actor: Actor, folder_id: str, limit: int, cursor: str | None, order_by: str
) -> tuple[FolderOut, Children]:
    """A folder the caller can see and one page of its children."""
    folder, level, page = service.children(
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
    return folder_out(folder, level)


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
    folder = service.restore(db, actor, folder_id)
    return folder_out(folder, Level.OWNER)
