"""Writing audit entries inside the caller's transaction."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from sqlalchemy.orm import Session

from docstore.audit.models import AuditLog
from docstore.context import Actor
from docstore.db import utcnow


class Action(StrEnum):
    """Every action the audit log records (API.md "Audit")."""

    UPLOAD = "UPLOAD"
    DOWNLOAD = "DOWNLOAD"
    VIEW = "VIEW"
    SHARE = "SHARE"
    UNSHARE = "UNSHARE"
    DELETE = "DELETE"
    RESTORE = "RESTORE"
    PURGE = "PURGE"
    MOVE = "MOVE"
    RENAME = "RENAME"
    VERSION_DELETE = "VERSION_DELETE"
    COMMENT = "COMMENT"
    LOGIN = "LOGIN"
    LOGIN_FAILED = "LOGIN_FAILED"


def record(
    db: Session,
    actor: Actor,
    action: Action,
    *,
    document_id: int | None = None,
    folder_id: int | None = None,
    share_id: int | None = None,
    owner_id: int | None = None,
    user_id: int | None = None,
    details: dict[str, Any] | None = None,
) -> AuditLog:
    """Add an entry to the session: it commits or rolls back with the action it records."""
    if actor.link is not None and actor.user is None:
        share_id = share_id or actor.link.id
        details = {**(details or {}), "via_link": actor.link.id}
    entry = AuditLog(
        user_id=user_id if user_id is not None else actor.user_id,
        document_id=document_id,
        folder_id=folder_id,
        share_id=share_id,
        owner_id=owner_id,
        action=action.value,
        ip_address=actor.ip,
        user_agent=(actor.user_agent or "")[:512] or None,
        timestamp=utcnow(),
        details=details,
    )
    db.add(entry)
    return entry
