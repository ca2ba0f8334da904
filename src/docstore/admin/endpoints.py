"""The admin console's API (admin only; anyone else gets 403, as the other /admin routes):
accounts with their usage, disable/enable, storage totals and job runs, what retention
would delete, and the audit chain's status, verification and export. The web console and
the `docstore admin` / `docstore user disable|enable` commands call these."""

from __future__ import annotations

from enum import StrEnum

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from docstore.admin import service
from docstore.admin.schemas import (
    AdminUserOut,
    AdminUserPage,
    AuditStatusOut,
    AuditVerdictOut,
    DoomedVersionOut,
    JobRunOut,
    RetentionPreviewOut,
    StorageOut,
)
from docstore.audit.service import as_utc
from docstore.deps import DB, CurrentActor, Svc
from docstore.pagination import DEFAULT_LIMIT, MAX_LIMIT
from docstore.schemas import Id, Timestamp, problems

router = APIRouter(tags=["admin"])


class ExportFormat(StrEnum):
    """Audit export formats."""

    jsonl = "jsonl"
    csv = "csv"


@router.get("/admin/users", response_model=AdminUserPage, responses=problems(400, 401, 403, 422))
def list_users(
    actor: CurrentActor,
    db: DB,
    q: str | None = Query(None, max_length=320, description="Part of an email or name."),
    limit: int = Query(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT),
    cursor: str | None = None,
) -> AdminUserPage:
    """Accounts, oldest first, with usage, plan and status (admin); `q` searches email and
    name (any case)."""
    service.require_admin(actor)
    users, next_cursor = service.search_users(db, q, limit, cursor)
    return AdminUserPage(
        items=[AdminUserOut.model_validate(u) for u in users], next_cursor=next_cursor
    )


@router.post(
    "/admin/users/{user_id}/disable",
    response_model=AdminUserOut,
    responses=problems(401, 403, 404, 409, 422),
)
def disable_user(user_id: Id, actor: CurrentActor, db: DB) -> AdminUserOut:
    """Disable an account (admin): it cannot sign in and its tokens stop working at once.
    Disabling one's own account is 409 `conflict`."""
    service.require_admin(actor)
    return AdminUserOut.model_validate(service.set_active(db, actor, user_id, False))


@router.post(
    "/admin/users/{user_id}/enable",
    response_model=AdminUserOut,
    responses=problems(401, 403, 404, 422),
)
def enable_user(user_id: Id, actor: CurrentActor, db: DB) -> AdminUserOut:
    """Enable a disabled account again (admin): its unexpired tokens work again."""
    service.require_admin(actor)
    return AdminUserOut.model_validate(service.set_active(db, actor, user_id, True))


@router.get("/admin/storage", response_model=StorageOut, responses=problems(401, 403))
def storage(actor: CurrentActor, db: DB, svc: Svc) -> StorageOut:
    """Storage totals (logical vs stored bytes: the dedup savings), blobs by state and
    pending GC, and the last run of retention, blob GC, fsck and audit verification (admin)."""
    service.require_admin(actor)
    totals = service.storage(db, svc.settings)
    runs = {
        name: (JobRunOut.model_validate(run) if run is not None else None)
        for name, run in totals.pop("last_runs").items()
    }
    return StorageOut(**totals, last_runs=runs)


@router.get(
    "/admin/retention/preview",
    response_model=RetentionPreviewOut,
    responses=problems(401, 403, 422),
)
async def retention_preview(
    actor: CurrentActor, svc: Svc, limit: int = Query(50, ge=1, le=MAX_LIMIT)
) -> RetentionPreviewOut:
    """The versions a retention run would delete now, first `limit` by document (admin):
    what `POST /admin/retention/run?dry_run=true` counts, item by item."""
    service.require_admin(actor)
    items, truncated = await run_in_threadpool(service.retention_preview, svc.database, limit)
    return RetentionPreviewOut(
        items=[DoomedVersionOut(**item) for item in items], truncated=truncated
    )


@router.get("/admin/audit/status", response_model=AuditStatusOut, responses=problems(401, 403))
def audit_status(actor: CurrentActor, db: DB) -> AuditStatusOut:
    """The newest verification of the audit chain, or null if it was never verified (admin)."""
    service.require_admin(actor)
    run = service.last_verification(db)
    return AuditStatusOut(last_verification=JobRunOut.model_validate(run) if run else None)


@router.post("/admin/audit/verify", response_model=AuditVerdictOut, responses=problems(401, 403))
async def audit_verify(actor: CurrentActor, svc: Svc) -> AuditVerdictOut:
    """Check the whole audit chain now, and the heads its anchor recorded (admin); the
    verdict is recorded as the newest verification. As `docstore audit verify --anchor`."""
    service.require_admin(actor)
    verdict = await run_in_threadpool(service.verify_audit, svc)
    return AuditVerdictOut(**verdict.as_dict())


@router.get(
    "/admin/audit/export",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "The entries, one JSON object per line, or CSV with a header row",
            "content": {
                "application/x-ndjson": {"schema": {"type": "string"}},
                "text/csv": {"schema": {"type": "string"}},
            },
        },
        **problems(401, 403, 422),
    },
)
def audit_export(
    actor: CurrentActor,
    svc: Svc,
    format: ExportFormat = ExportFormat.jsonl,
    since: Timestamp | None = Query(None, description="Inclusive; no offset means UTC."),
    until: Timestamp | None = Query(None, description="Exclusive; no offset means UTC."),
) -> StreamingResponse:
    """The whole audit log (or since..until), oldest first, as JSON Lines or CSV with its
    seals (admin): what `docstore audit export` writes."""
    service.require_admin(actor)
    media = "text/csv" if format == ExportFormat.csv else "application/x-ndjson"
    chunks = service.export_chunks(svc.database, format.value, as_utc(since), as_utc(until))
    name = f"audit.{format.value}"
    return StreamingResponse(
        chunks,
        media_type=media,
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
