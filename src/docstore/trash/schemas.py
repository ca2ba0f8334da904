"""Trash bodies."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel


class TrashItem(BaseModel):
    """An item the caller deleted; `original_parent_id` is the folder it was deleted from."""

    kind: Literal["folder", "document"]
    id: int
    name: str
    deleted_at: datetime
    original_parent_id: int | None
    size_bytes: int | None = None


class TrashPage(BaseModel):
    """A page of the trash, most recently deleted first."""

    items: list[TrashItem]
    next_cursor: str | None = None
