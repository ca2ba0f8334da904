"""Change-feed bodies (API.md "Changes")."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from docstore.documents.schemas import DocumentOut
from docstore.folders.schemas import FolderOut

OpName = Literal[
    "created", "updated", "moved", "deleted", "restored", "purged", "access_gained", "access_lost"
]


class DocumentEntry(DocumentOut):
    """A document as GET /documents/{id} shows it, plus its `path` of names from the
    caller's root, the shared item, or the cursor's folder."""

    path: str


class FolderEntry(FolderOut):
    """A folder as GET /folders/{id} shows it; here `path` is its names (as for
    documents), not the id chain."""


class ChangeOut(BaseModel):
    """One change; `entry` is null once the item is gone or the caller cannot see it."""

    seq: int
    kind: Literal["document", "folder"]
    id: int
    op: OpName
    entry: DocumentEntry | FolderEntry | None


class ChangesPage(BaseModel):
    """A page of the caller's changes and the cursor after it."""

    changes: list[ChangeOut]
    cursor: str
    has_more: bool


class CursorOut(BaseModel):
    """The current position."""

    cursor: str


class WaitOut(BaseModel):
    """Whether something changed; `backoff`: seconds to wait before the next poll."""

    changes: bool
    backoff: int | None = Field(default=None)
