"""GET /audit: the audit entries the caller may see, filtered and paginated."""

from __future__ import annotations

from fastapi import APIRouter, Query

from docstore.audit import service
from docstore.audit.repository import AuditFilter
from docstore.audit.schemas import AuditEntryOut, AuditPage
from docstore.audit.service import Action
from docstore.deps import DB, CurrentActor
from docstore.pagination import DEFAULT_LIMIT, MAX_LIMIT
from docstore.schemas import Id, Timestamp, problems

router = APIRouter(tags=["audit"])


@router.get("/audit", response_model=AuditPage, responses=problems(400, 401, 422))
def list_audit(
    actor: CurrentActor,
    db: DB,
    document_id: Id | None = None,
    user_id: Id | None = None,
    action: Action | None = None,
    since: Timestamp | None = Query(None, description="Inclusive; no offset means UTC."),
    until: Timestamp | None = Query(None, description="Exclusive; no offset means UTC."),
    limit: int = Query(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT),
    cursor: str | None = None,
) -> AuditPage:
    """Entries about items the caller owns and the caller's own actions (admins: all),
    newest first. Pass `next_cursor` back as `cursor` for the next page."""
    filters = AuditFilter(
        document_id=document_id,
        user_id=user_id,
        action=action.value if action is not None else None,
        since=service.as_utc(since),
        until=service.as_utc(until),
    )
    entries, next_cursor = service.list_entries(db, actor, filters, limit, cursor)
    items = [
        AuditEntryOut(
            id=e.id,
            user_id=e.user_id,
            document_id=e.document_id,
            folder_id=e.folder_id,
            share_id=e.share_id,
            owner_id=e.owner_id,
            action=e.action,
            ip_address=e.ip_address,
            user_agent=e.user_agent,
            timestamp=e.timestamp,
            details=e.details,
            sealed=e.seal is not None,
        )
        for e in entries
    ]
    return AuditPage(items=items, next_cursor=next_cursor)
