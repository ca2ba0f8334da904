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
    # False while checksum_sha256 is only the uploader's claim (S3 mode, until the
    # background verification has hashed the stored bytes; false for good if they differ).
    checksum_verified: bool
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
