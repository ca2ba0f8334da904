"""Audit bodies: one entry of the log, and a page of them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from docstore.schemas import Page


class AuditEntryOut(BaseModel):
    """An audit entry. `owner_id` is the owner of the item at the time of the action;
    `share_id` is set for share actions and for anything done through a link."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    user_id: int | None
    document_id: int | None
    folder_id: int | None
    share_id: int | None
    owner_id: int | None
    action: str
    ip_address: str | None
    user_agent: str | None
    timestamp: datetime
    details: dict[str, Any] | None
    sealed: bool


class AuditPage(Page[AuditEntryOut]):
    """A page of audit entries, newest first."""
