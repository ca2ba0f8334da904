"""Saving a raw request body as a new version: the version endpoint's and a share link's.

The bytes stream into storage before the save's unit of work opens (`precheck_save` checks
permission and quota first, in a short transaction of its own, before any byte is read).
"""

from __future__ import annotations

from fastapi import Request
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from docstore.context import Actor
from docstore.db import on_rollback
from docstore.documents.receive import declared_length, discard, parse_checksum, receive_body
from docstore.documents.schemas import SaveOut
from docstore.errors import BadRequest, QuotaExceeded
from docstore.services import Services
from docstore.sharing.permissions import Level, get_document_for
from docstore.users import repository as user_repo
from docstore.versions import service
from docstore.versions.schemas import OnConflict


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
        if size is not None and not user_repo.fits(db, doc.owner_id, size):
            raise QuotaExceeded("This version does not fit in the owner's quota.")


async def save_raw(
    request: Request,
    db: Session,
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
