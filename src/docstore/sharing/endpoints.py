"""Sharing endpoints: shares, shared-with-me, access explanations, and link access."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Query, Request, Response, status
from fastapi.responses import RedirectResponse

from docstore.audit.service import Action, record_failed_attempt
from docstore.context import Actor
from docstore.deps import DB, CurrentActor, Svc, anonymous_actor, end_before_stream
from docstore.documents import service as documents
from docstore.documents.schemas import DownloadOut, SaveOut
from docstore.errors import ValidationFailed
from docstore.folders import service as folders
from docstore.folders.schemas import ChildOut
from docstore.pagination import DEFAULT_LIMIT, MAX_LIMIT
from docstore.schemas import RAW_BODY, Id, problems
from docstore.sharing import links, service
from docstore.sharing.permissions import Level
from docstore.sharing.schemas import (
    AccessOut,
    LinkOut,
    SharedPage,
    ShareIn,
    ShareOut,
    SharePage,
    SharePatch,
)
from docstore.versions.raw import base_from, save_raw
from docstore.versions.schemas import OnConflict

router = APIRouter(tags=["sharing"])
links_router = APIRouter(prefix="/links/{token}", tags=["links"])

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT)]


def share_problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """Problem responses of share changes: 503 means the caches could not be told."""
    out = problems(*statuses, 503)
    out[503] = {**out[503], "description": "Permission cache unavailable (cache_unavailable)"}
    return out


@router.post(
    "/shares",
    status_code=status.HTTP_201_CREATED,
    response_model=ShareOut,
    responses=share_problems(400, 401, 403, 404, 422),
)
def create_share(body: ShareIn, actor: CurrentActor, db: DB, svc: Svc) -> ShareOut:
    """Share a document or folder you own with an email address, or as a link.

    A link's `token` and `url` are in this answer only; its password is never returned.
    """
    return service.create(db, actor, body, svc.settings.resolved_public_url)


@router.patch(
    "/shares/{share_id}",
    response_model=ShareOut,
    responses=share_problems(400, 401, 403, 404, 409, 422),
)
def update_share(share_id: Id, body: SharePatch, actor: CurrentActor, db: DB) -> ShareOut:
    """Change a share's permission or expiry; a downgrade applies from the next request."""
    return service.update(db, actor, share_id, body)


@router.delete(
    "/shares/{share_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=share_problems(401, 403, 404),
)
def revoke_share(share_id: Id, actor: CurrentActor, db: DB) -> Response:
    """Revoke a share: from the next request on it grants nothing, in every process."""
    service.revoke(db, actor, share_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/documents/{document_id}/shares",
    response_model=SharePage,
    responses=problems(400, 401, 403, 404),
)
def document_shares(
    document_id: Id,
    actor: CurrentActor,
    db: DB,
    limit: Limit = DEFAULT_LIMIT,
    cursor: str | None = None,
) -> SharePage:
    """The document's shares (owner only)."""
    items, next_cursor = service.list_for_item(
        db, actor, document_id=document_id, limit=limit, cursor=cursor
    )
    return SharePage(items=items, next_cursor=next_cursor)


@router.get(
    "/folders/{folder_id}/shares", response_model=SharePage, responses=problems(400, 401, 403, 404)
)
def folder_shares(
    folder_id: Id,
    actor: CurrentActor,
    db: DB,
    limit: Limit = DEFAULT_LIMIT,
    cursor: str | None = None,
) -> SharePage:
    """The folder's shares (owner only); they cover everything below the folder."""
    items, next_cursor = service.list_for_item(
        db, actor, folder_id=folder_id, limit=limit, cursor=cursor
    )
    return SharePage(items=items, next_cursor=next_cursor)


@router.get("/shared-with-me", response_model=SharedPage, responses=problems(400, 401))
def shared_with_me(
    actor: CurrentActor, db: DB, limit: Limit = DEFAULT_LIMIT, cursor: str | None = None
) -> SharedPage:
    """Documents and folders other people have shared with you, newest share first."""
    items, next_cursor = service.shared_with_me(db, actor, limit, cursor)
    return SharedPage(items=items, next_cursor=next_cursor)


@router.get(
    "/documents/{document_id}/access", response_model=AccessOut, responses=problems(401, 403, 404)
)
def document_access(
    document_id: Id, actor: CurrentActor, db: DB, user_id: Id | None = None
) -> AccessOut:
    """Your effective permission and why; the owner may ask about anyone (`user_id`)."""
    return service.access(db, actor, document_id, user_id)


def get_link_actor(
    token: str,
    request: Request,
    db: DB,
    svc: Svc,
    x_link_password: str | None = Header(None),
) -> Actor:
    """The anonymous holder of a valid link (password checked and rate-limited), or an error.

    A wrong password is recorded in the audit log even though the request fails: the
    request's transaction is ended first (on SQLite it holds the write lock).
    """
    limits = links.LinkLimits.from_settings(svc.settings)
    links.slow_down(db, token, limits)  # before the first query: it holds no lock
    share = links.find(db, token)
    who = anonymous_actor(request)
    if not links.check_password(db, share, token, x_link_password, who.ip, limits):
        share_id, document_id, folder_id = share.id, share.document_id, share.folder_id
        owner_id = links.owner_of(db, share)
        record_failed_attempt(
            db,
            svc.database,
            who,
            Action.LOGIN_FAILED,
            document_id=document_id,
            folder_id=folder_id,
            share_id=share_id,
            owner_id=owner_id,
            details={"reason": "link_password_invalid", "via_link": share_id},
        )
        raise links.wrong_password()
    # A link save streams its body before writing (see get_actor).
    end_before_stream(db)
    return links.link_actor(share, who.ip, who.user_agent)


LinkActor = Annotated[Actor, Depends(get_link_actor)]


@links_router.get("", response_model=LinkOut, responses=problems(400, 403, 404, 410, 429))
def open_link(
    actor: LinkActor,
    db: DB,
    folder_id: Id | None = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: str | None = None,
    order_by: Literal["name", "updated_at"] = "name",
) -> LinkOut:
    """The shared document, or the shared folder (or `folder_id` inside it) with children."""
    link = actor.link
    assert link is not None
    if link.document_id is not None and folder_id is None:
        return service.open_document_link(db, actor)
    folder, page = folders.children_page(
        db, actor, str(folder_id or link.folder_id or 0), limit, cursor, order_by
    )
    return LinkOut(
        kind="folder",
        permission=Level(link.permission).name,  # type: ignore[arg-type]
        expires_at=link.expires_at,
        folder=folder,
        items=[ChildOut.model_validate_json(item) for item in folders.child_items(page)],
        next_cursor=page.next_cursor,
    )


def _link_document(actor: Actor, document_id: int | None) -> int:
    link = actor.link
    assert link is not None
    chosen = document_id if document_id is not None else link.document_id
    if chosen is None:
        raise ValidationFailed("Name the document inside the shared folder: document_id.")
    return chosen


@links_router.get(
    "/download",
    response_model=DownloadOut,
    responses={
        307: {"description": "Redirect to a signed URL"},
        **problems(403, 404, 410, 422, 429, 503),
    },
)
def link_download(
    actor: LinkActor,
    db: DB,
    svc: Svc,
    document_id: Id | None = None,
    version_id: Id | None = None,
    redirect: bool = True,
) -> Response | DownloadOut:
    """307 to a signed URL (never valid past the link's expiry) for the linked document or
    a document inside the linked folder."""
    out = documents.download(
        db,
        actor,
        svc.store,
        _link_document(actor, document_id),
        version_id,
        svc.settings.signed_url_ttl_seconds,
    )
    if redirect:
        return RedirectResponse(out.url, status_code=status.HTTP_307_TEMPORARY_REDIRECT)
    return out


@links_router.post(
    "/versions",
    status_code=status.HTTP_201_CREATED,
    response_model=SaveOut,
    openapi_extra=RAW_BODY,
    responses=problems(400, 403, 404, 409, 410, 413, 422, 429, 503, 507),
)
async def link_save_version(
    request: Request,
    actor: LinkActor,
    db: DB,
    svc: Svc,
    document_id: Id | None = None,
    base_version_id: Id | None = None,
    on_conflict: OnConflict = "reject",
    if_match: str | None = Header(None),
    x_checksum_sha256: str | None = Header(None),
) -> SaveOut:
    """Save the raw body as a new version through a link that grants EDIT."""
    base = base_from(base_version_id, if_match)
    return await save_raw(
        request,
        db,
        svc,
        actor,
        _link_document(actor, document_id),
        base,
        on_conflict,
        x_checksum_sha256,
    )
