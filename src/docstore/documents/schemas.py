"""Document bodies."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from docstore.schemas import BodyInt
from docstore.versions.schemas import Resolution, VersionOut


class DocumentLockOut(BaseModel):
    """A live WebDAV lock on a document: its holder's display name and when it expires."""

    owner: str
    expires_at: datetime


class DocumentOut(BaseModel):
    """A document with its current version and the caller's permission on it."""

    id: int
    name: str
    owner_id: int
    parent_folder_id: int
    mime_type: str
    size_bytes: int
    current_version: VersionOut | None
    created_at: datetime
    updated_at: datetime
    is_deleted: bool
    permission: str
    # Filled by GET /documents/{id}; null elsewhere (a locked document refuses API writes).
    lock: DocumentLockOut | None = None
    # GET /documents/{id} only: how far the search index has read the current version.
    index_status: Literal["pending", "indexed", "failed", "skipped"] | None = None


class DocumentPatch(BaseModel):
    """Rename and/or move; `parent_folder_id: null` means the caller's root."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, max_length=1024)
    parent_folder_id: BodyInt | str | None = None


class DownloadOut(BaseModel):
    """A short-lived signed URL instead of a redirect."""

    url: str
    expires_at: datetime
    # The version the URL serves (API-ADDITIONS): a client checks the bytes it gets against
    # it without asking for the document first (sync: two requests per file, not three).
    version_id: int | None = None
    version_number: int | None = None
    size_bytes: int | None = None
    checksum_sha256: str | None = None


class SaveOut(BaseModel):
    """The outcome of a save: where the bytes went and how a conflict was resolved."""

    resolution: Resolution
    document: DocumentOut
    version: VersionOut
