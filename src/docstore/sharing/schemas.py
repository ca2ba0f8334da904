"""Share, access and link bodies: a link's token is shown once, its password never."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field, field_validator

from docstore.documents.schemas import DocumentOut
from docstore.folders.schemas import ChildOut, FolderOut
from docstore.schemas import BodyId

PermissionName = Literal["VIEW", "COMMENT", "EDIT"]


def _upper(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else value


def _utc(value: datetime | None) -> datetime | None:
    """A naive time is read as UTC (API times are UTC); an aware one is converted."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class ShareIn(BaseModel):
    """A share of a document or a folder: to an email (account or not yet), to a group the
    caller is in, or as a link."""

    model_config = ConfigDict(extra="forbid")

    document_id: BodyId | None = None
    folder_id: BodyId | None = None
    permission: PermissionName
    email: EmailStr | None = None
    group_id: BodyId | None = None
    link: bool = False
    expires_at: datetime | None = None
    password: str | None = Field(default=None, min_length=1, max_length=1024)

    _permission = field_validator("permission", mode="before")(_upper)
    _expires = field_validator("expires_at")(_utc)


class SharePatch(BaseModel):
    """Change a share's level or expiry (`expires_at: null` removes the expiry)."""

    model_config = ConfigDict(extra="forbid")

    permission: PermissionName | None = None
    expires_at: datetime | None = None

    _permission = field_validator("permission", mode="before")(_upper)
    _expires = field_validator("expires_at")(_utc)


class ShareOut(BaseModel):
    """A share; `token` and `url` only in the answer that created a link."""

    id: int
    kind: Literal["user", "email", "group", "link"]
    document_id: int | None
    folder_id: int | None
    permission: PermissionName
    expires_at: datetime | None
    is_active: bool
    user_id: int | None = None
    email: str | None = None
    group_id: int | None = None
    group_name: str | None = None
    has_password: bool = False
    created_by: int
    created_at: datetime
    revoked_at: datetime | None = None
    token: str | None = None
    url: str | None = None


class SharePage(BaseModel):
    """A page of shares."""

    items: list[ShareOut]
    next_cursor: str | None = None


class SharedItem(BaseModel):
    """A document or folder shared with the caller."""

    kind: Literal["document", "folder"]
    id: int
    name: str
    owner_id: int
    permission: PermissionName
    share_id: int
    shared_by: int
    shared_at: datetime
    expires_at: datetime | None
    parent_folder_id: int | None = None
    mime_type: str | None = None
    group_id: int | None = None


class SharedPage(BaseModel):
    """A page of what has been shared with the caller, newest share first."""

    items: list[SharedItem]
    next_cursor: str | None = None


class AccessVia(BaseModel):
    """One reason for the access: ownership, a direct share, a folder share, a share to a
    group the user is in (on the document, or on `folder_id`), or a link."""

    kind: Literal["owner", "direct", "folder", "group", "link"]
    share_id: int | None = None
    folder_id: int | None = None
    # Only in `kind: "group"` entries (so the other kinds keep their shape).
    group_id: int | None = Field(default=None, exclude_if=lambda v: v is None)
    group_name: str | None = Field(default=None, exclude_if=lambda v: v is None)
    permission: str


class AccessOut(BaseModel):
    """A user's effective permission on a document and why (strongest reason first)."""

    user_id: int | None
    permission: str
    via: list[AccessVia]


class LinkOut(BaseModel):
    """What a link opens: a document, or a folder (or a folder inside it) with its children."""

    kind: Literal["document", "folder"]
    permission: PermissionName
    expires_at: datetime | None
    document: DocumentOut | None = None
    access: AccessOut | None = None
    folder: FolderOut | None = None
    items: list[ChildOut] | None = None
    next_cursor: str | None = None
