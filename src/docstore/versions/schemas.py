"""Version bodies: never a storage key."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel


class VersionOut(BaseModel):
    """A version as the API shows it; `is_current` comes from the document's pointer."""

    id: int
    document_id: int
    version_number: int
    size_bytes: int
    checksum_sha256: str
    created_by: int | None
    created_at: datetime
    is_current: bool
    keep_forever: bool
    is_damaged: bool


class VersionPatch(BaseModel):
    """Pin or unpin a version."""

    keep_forever: bool


Resolution = Literal["saved", "merged", "conflict_copy"]
OnConflict = Literal["reject", "copy", "merge"]
