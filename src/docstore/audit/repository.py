"""Queries on the audit log. Every user-reachable read is built by `readable_statements`,
which applies the visibility rule, so no caller can forget it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, Select, and_, or_, select

from docstore.audit.models import AuditLog


@dataclass(frozen=True)
class AuditFilter:
    """The filters of GET /audit; `since` is inclusive, `until` exclusive."""

    document_id: int | None = None
    user_id: int | None = None
    action: str | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True)
class Position:
    """Where a page ends: (timestamp, id) of its last entry, newest-first order."""

    timestamp: datetime
    id: int


def readable_statements(
    viewer_id: int, is_admin: bool, filters: AuditFilter, before: Position | None
) -> list[Select[AuditLog]]:
    """The statements whose union is what `viewer_id` may see under `filters`, each newest
    first and each served by one index (the caller merges them and applies the limit).

    A user sees entries about items they own (`owner_id`) and their own actions
    (`user_id`); an admin sees everything.
    """
    conds: list[ColumnElement[bool]] = []
    if filters.document_id is not None:
        conds.append(AuditLog.document_id == filters.document_id)
    if filters.user_id is not None:
        conds.append(AuditLog.user_id == filters.user_id)
    if filters.action is not None:
        conds.append(AuditLog.action == filters.action)
    if filters.since is not None:
        conds.append(AuditLog.timestamp >= filters.since)
    if filters.until is not None:
        conds.append(AuditLog.timestamp < filters.until)
    if before is not None:
        # Written as a range on timestamp plus a tie-break, so the index range applies.
        conds.append(AuditLog.timestamp <= before.timestamp)
        conds.append(or_(AuditLog.timestamp < before.timestamp, AuditLog.id < before.id))
    branches: list[list[ColumnElement[bool]]]
    if is_admin:
        branches = [conds]
    elif filters.document_id is not None or filters.user_id is not None:
        # The (document_id|user_id, timestamp) index finds the rows; visibility filters them.
        mine = or_(AuditLog.owner_id == viewer_id, AuditLog.user_id == viewer_id)
        branches = [[*conds, mine]]
    else:
        # Two disjoint branches, each on its own (owner_id|user_id, timestamp) index: an OR
        # across two columns would otherwise scan the whole log.
        owned = AuditLog.owner_id == viewer_id
        acted = and_(
            AuditLog.user_id == viewer_id,
            or_(AuditLog.owner_id.is_(None), AuditLog.owner_id != viewer_id),
        )
        branches = [[*conds, owned], [*conds, acted]]
    return [
        select(AuditLog).where(*b).order_by(AuditLog.timestamp.desc(), AuditLog.id.desc())
        for b in branches
    ]
