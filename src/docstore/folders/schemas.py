"""Folder bodies."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from docstore.schemas import BodyInt


class FolderIn(BaseModel):
    """A new folder; `parent_id: null` means the caller's root."""

    name: str = Field(max_length=1024)
    parent_id: BodyInt | str | None = None


class FolderPatch(BaseModel):
    """Rename and/or move (send `parent_id` to move; null means the root)."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, max_length=1024)
    parent_id: BodyInt | str | None = None


class FolderOut(BaseModel):
    """A folder; `path` is the chain of folder ids from the owner's root."""

    id: int
    name: str
    parent_id: int | None
    path: str
    owner_id: int
    created_at: datetime
    updated_at: datetime
    is_deleted: bool
    permission: str | None = None


class ChildOut(BaseModel):
    """One entry of a folder listing: a folder or a document."""

    kind: Literal["folder", "document"]
    id: int
    name: str
    owner_id: int
    created_at: datetime
    updated_at: datetime
    size_bytes: int | None = None
    mime_type: str | None = None
    current_version_id: int | None = None


class ChildrenPage(BaseModel):
    """A page of a folder's children, folders first."""

    folder: FolderOut
    items: list[ChildOut]
    next_cursor: str | None = None
