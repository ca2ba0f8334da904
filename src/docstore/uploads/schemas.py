"""Upload bodies: initiate, the signed part requests, complete."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator, model_validator

from docstore.documents.receive import SHA256_HEX
from docstore.documents.schemas import DocumentOut
from docstore.hashing import b64_digest
from docstore.schemas import BodyId, BodyInt
from docstore.storage.base import MAX_PART_NUMBER, MAX_PART_SIZE, MIN_PART_SIZE
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
    folder_id: BodyInt | str | None = None
    document_id: BodyId | None = None
    base_version_id: BodyId | None = None
    mime_type: str | None = Field(default=None, max_length=255)
    # The SHA-256 of each part (base64, as x-amz-checksum-sha256) cut at `part_size`: each
    # is signed into its part's URL, so storage refuses other bytes, and together they are
    # the blob's content hash (docstore.hashing). Without them the server reads the
    # object back at complete to hash it.
    part_size: StrictInt | None = Field(default=None, ge=MIN_PART_SIZE, le=MAX_PART_SIZE)
    part_checksums_sha256: list[str] | None = Field(default=None, max_length=MAX_PART_NUMBER)

    @field_validator("checksum_sha256")
    @classmethod
    def _hex_sha256(cls, value: str) -> str:
        value = value.strip().lower()
        if not SHA256_HEX.match(value):
            raise ValueError("must be 64 hexadecimal digits")
        return value

    @field_validator("part_checksums_sha256")
    @classmethod
    def _b64_sha256s(cls, values: list[str] | None) -> list[str] | None:
        if values is not None:
            for value in values:
                b64_digest(value)
        return values

    @model_validator(mode="after")
    def _parts_declared_whole(self) -> UploadCreate:
        if (self.part_size is None) != (self.part_checksums_sha256 is None):
            raise ValueError("send part_size and part_checksums_sha256 together")
        if self.part_size is not None and self.part_checksums_sha256 is not None:
            count = max(1, -(-self.size_bytes // self.part_size))
            if len(self.part_checksums_sha256) != count:
                raise ValueError(
                    f"{self.size_bytes} bytes in parts of {self.part_size} make {count} "
                    f"parts: send {count} part checksums"
                )
        return self


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
