"""Upload bodies: initiate, the signed part requests, complete."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator

from docstore.documents.receive import SHA256_HEX
from docstore.documents.schemas import DocumentOut
from docstore.schemas import Id
from docstore.storage.base import MAX_PART_NUMBER, MAX_PART_SIZE
from docstore.versions.schemas import OnConflict, Resolution, VersionOut

# The most any multipart upload can hold (10,000 parts of 5 GiB); anything beyond is absurd
# (422) whatever DOCSTORE_MAX_FILE_BYTES says; below it, over that setting is 413.
ABSURD_SIZE = MAX_PART_NUMBER * MAX_PART_SIZE

PartNumber = Annotated[StrictInt, Field(ge=1, le=MAX_PART_NUMBER)]


class UploadCreate(BaseModel):
    """Start an upload: a new document in a folder, or a new version of `document_id`."""

    model_config = ConfigDict(extra="forbid")

    filename: str = Field(min_length=1, max_length=1024)
    size_bytes: StrictInt = Field(ge=0, le=ABSURD_SIZE)
    checksum_sha256: str = Field(description="SHA-256 of the whole file, 64 hex digits")
    folder_id: int | str | None = None
    document_id: Annotated[StrictInt, Id] | None = None
    base_version_id: Annotated[StrictInt, Id] | None = None
    mime_type: str | None = Field(default=None, max_length=255)

    @field_validator("checksum_sha256")
    @classmethod
    def _hex_sha256(cls, value: str) -> str:
        value = value.strip().lower()
        if not SHA256_HEX.match(value):
            raise ValueError("must be 64 hexadecimal digits")
        return value


class PartRequest(BaseModel):
    """One part's signed request: send the bytes with exactly this method, URL and headers."""

    part_number: int
    url: str
    method: str
    headers: dict[str, str]


class UploadOut(BaseModel):
    """A started upload; with `skip_upload` no bytes need to be sent and `parts` is empty."""

    upload_id: str
    skip_upload: bool
    part_size: int
    part_count: int
    parts: list[PartRequest]
    expires_at: datetime


class CompletedPart(BaseModel):
    """A part as the client saw it uploaded (the ETag its PUT answered)."""

    model_config = ConfigDict(extra="forbid")

    part_number: PartNumber
    etag: str = Field(min_length=1, max_length=256)


class UploadComplete(BaseModel):
    """Finish an upload; without `parts` the server lists what storage received."""

    model_config = ConfigDict(extra="forbid")

    parts: list[CompletedPart] | None = Field(default=None, max_length=MAX_PART_NUMBER)
    on_conflict: OnConflict = "reject"

    @field_validator("parts")
    @classmethod
    def _distinct(cls, parts: list[CompletedPart] | None) -> list[CompletedPart] | None:
        if parts is not None and len({p.part_number for p in parts}) != len(parts):
            raise ValueError("a part number is listed twice")
        return parts


class UploadResult(DocumentOut):
    """The document the upload created or added a version to, and how a conflict went."""

    resolution: Resolution
    version: VersionOut
