"""Version endpoints: list, save raw bytes with a base, restore, pin, delete."""

from __future__ import annotations

from fastapi import APIRouter, Header, Query, Request, Response, status
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from docstore.context import Actor
from docstore.db import on_rollback
from docstore.deps import DB, CurrentActor, Svc
from docstore.documents.schemas import SaveOut
from docstore.errors import BadRequest, QuotaExceeded
from docstore.pagination import DEFAULT_LIMIT, MAX_LIMIT
from docstore.schemas import RAW_BODY, Id, problems
from docstore.services import Services
from docstore.sharing.permissions import Level, get_document_for
from docstore.uploads.receive import declared_length, discard, parse_checksum, receive_body
from docstore.users import repository as users
from docstore.versions import service
from docstore.versions.schemas import OnConflict, VersionOut, VersionPatch

router = APIRouter(prefix="/documents/{document_id}/versions", tags=["versions"])


class VersionPage(BaseModel):
    """A page of versions, newest first."""

    items: list[VersionOut]
    next_cursor: str | None = None


def parse_if_match(value: str | None) -> int | None:
    """The version id in `If-Match: "<id>"` (weak or bare also accepted)."""
    if value is None:
        return None
    tag = value.strip().removeprefix("W/").strip('"')
    try:
        return int(tag)
    except ValueError:
        raise BadRequest("If-Match must be the document's ETag, a version id.") from None


def base_from(base_version_id: int | None, if_match: str | None) -> int | None:
    """The base version from the query or If-Match (they must agree when both are sent)."""
    tagged = parse_if_match(if_match)
    if base_version_id is not None and tagged is not None and base_version_id != tagged:
        raise BadRequest("base_version_id and If-Match disagree.")
    return base_version_id if base_version_id is not None else tagged


def precheck_save(svc: Services, actor: Actor, document_id: int, size: int | None) -> None:
    """Before any byte is read: EDIT on the document and, if known, room in the quota."""
    with svc.database.transaction() as db:
        doc, _, _ = get_document_for(db, actor, document_id, Level.EDIT)
        if size is not None and not users.fits(db, doc.owner_id, size):
            raise QuotaExceeded("This version does not fit in the owner's quota.")


async def save_raw(
    request: Request,
    db: DB,
    svc: Services,
    actor: Actor,
    document_id: int,
    base_version_id: int | None,
    on_conflict: OnConflict,
    checksum: str | None,
) -> SaveOut:
    """Stream a raw body into storage, then save it as a version (shared with link saves)."""
    limit = svc.settings.simple_upload_max_bytes
    expected = parse_checksum(checksum)
    length = declared_length(request, limit)
    await run_in_threadpool(precheck_save, svc, actor, document_id, length)
    stored = await receive_body(request, svc, limit, expected)
    on_rollback(db, lambda: discard(svc, stored.key, stored.blob_id))
    return await run_in_threadpool(
        lambda: service.save(
            db, svc, actor, document_id, stored,
            base_version_id=base_version_id, on_conflict=on_conflict,
        )
    )  # fmt: skip


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
