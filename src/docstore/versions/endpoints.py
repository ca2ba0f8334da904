"""Version endpoints: list, save raw bytes with a base, restore, pin, delete."""

from __future__ import annotations

from fastapi import APIRouter, Header, Query, Request, Response, status
from pydantic import BaseModel

from docstore.deps import DB, CurrentActor, Svc
from docstore.documents.schemas import SaveOut
from docstore.pagination import DEFAULT_LIMIT, MAX_LIMIT
from docstore.schemas import RAW_BODY, Id, problems
from docstore.versions import service
from docstore.versions.raw import base_from, save_raw
from docstore.versions.schemas import OnConflict, VersionOut, VersionPatch

router = APIRouter(prefix="/documents/{document_id}/versions", tags=["versions"])


class VersionPage(BaseModel):
    """A page of versions, newest first."""

    items: list[VersionOut]
    next_cursor: str | None = None


@router.get("", response_model=VersionPage, responses=problems(400, 401, 404))
def list_versions(
    document_id: Id,
    actor: CurrentActor,
    db: DB,
    limit: int = Query(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT),
    cursor: str | None = None,
) -> VersionPage:
    """The document's versions, newest first."""
    items, next_cursor = service.list_versions(db, actor, document_id, limit, cursor)
    return VersionPage(items=items, next_cursor=next_cursor)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=SaveOut,
    openapi_extra=RAW_BODY,
    responses=problems(400, 401, 403, 404, 409, 413, 422, 503, 507),
)
async def save_version(
    document_id: Id,
    request: Request,
    actor: CurrentActor,
    db: DB,
    svc: Svc,
    base_version_id: Id | None = None,
    on_conflict: OnConflict = "reject",
    if_match: str | None = Header(None),
    x_checksum_sha256: str | None = Header(None),
) -> SaveOut:
    """Save the raw body as a new version; a stale base is rejected, copied or merged."""
    base = base_from(base_version_id, if_match)
    return await save_raw(
        request, db, svc, actor, document_id, base, on_conflict, x_checksum_sha256
    )


@router.post(
    "/{version_id}/restore",
    status_code=status.HTTP_201_CREATED,
    response_model=SaveOut,
    responses=problems(401, 403, 404, 409, 507),
)
def restore_version(document_id: Id, version_id: Id, actor: CurrentActor, db: DB) -> SaveOut:
    """A new current version with this version's content (no re-upload)."""
    return service.restore(db, actor, document_id, version_id)


@router.patch(
    "/{version_id}", response_model=VersionOut, responses=problems(400, 401, 403, 404, 422)
)
def pin_version(
    document_id: Id, version_id: Id, body: VersionPatch, actor: CurrentActor, db: DB
) -> VersionOut:
    """Pin (`keep_forever: true`) or unpin a version."""
    return service.pin(db, actor, document_id, version_id, body.keep_forever)


@router.delete(
    "/{version_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problems(401, 403, 404, 409),
)
def delete_version(document_id: Id, version_id: Id, actor: CurrentActor, db: DB) -> Response:
    """Delete a version that is not the current one (owner only); frees its quota."""
    service.delete(db, actor, document_id, version_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
