"""What the API returns, as typed objects; extra fields the server adds are kept, not lost."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

# IDs are opaque to clients: integers today, perhaps strings tomorrow (API.md, Conventions).
Id = int | str
T = TypeVar("T")


class ApiModel(BaseModel):
    """Base of every response object; unknown fields are kept in `model_extra`."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)


class Page(ApiModel, Generic[T]):
    """One page of a list; pass `next_cursor` back as `cursor` for the next one."""

    items: list[T]
    next_cursor: str | None = None


class User(ApiModel):
    id: Id
    email: str
    name: str
    quota_bytes: int
    used_bytes: int
    reserved_bytes: int = 0  # open uploads' declared sizes, counted against the quota
    plan: str | None = None
    is_admin: bool = False
    root_folder_id: Id | None = None
    created_at: datetime | None = None


class Token(ApiModel):
    """A bearer token (shown once) and its user."""

    token: str
    user: User
    expires_at: datetime | None = None


class SessionInfo(ApiModel):
    """A signed-in session or an app password of the caller's (never its secret)."""

    id: Id
    kind: Literal["session", "app_password"] | str
    name: str | None = None
    user_agent: str | None = None
    ip_address: str | None = None
    created_at: datetime | None = None
    last_used_at: datetime | None = None
    expires_at: datetime | None = None
    current: bool = False


class AppPassword(ApiModel):
    """A new app password; `token` is shown this once."""

    id: Id
    name: str
    token: str
    created_at: datetime | None = None


class Folder(ApiModel):
    id: Id
    name: str
    parent_id: Id | None = None
    path: str | None = None
    owner_id: Id | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    is_deleted: bool = False
    permission: str | None = None


class Child(ApiModel):
    """One entry of a folder listing."""

    kind: Literal["folder", "document"]
    id: Id
    name: str
    owner_id: Id | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    size_bytes: int | None = None
    mime_type: str | None = None
    current_version_id: Id | None = None


class ChildrenPage(Page[Child]):
    folder: Folder | None = None


class Version(ApiModel):
    id: Id
    document_id: Id
    version_number: int
    size_bytes: int
    checksum_sha256: str
    # False while the SHA-256 is the uploader's claim the server has not hashed (S3 mode).
    checksum_verified: bool | None = None
    created_by: Id | None = None
    created_at: datetime | None = None
    is_current: bool = False
    keep_forever: bool = False
    is_damaged: bool = False


class Document(ApiModel):
    id: Id
    name: str
    owner_id: Id | None = None
    parent_folder_id: Id | None = None
    mime_type: str | None = None
    size_bytes: int = 0
    current_version: Version | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    is_deleted: bool = False
    permission: str | None = None


class BatchFile(ApiModel):
    """A file for `DocstoreClient.upload_batch`: its path below the target folder ('a/b.txt',
    folders created as needed), its bytes (or a local file to read them from), and
    optionally its SHA-256 (the server then refuses other bytes) and MIME type."""

    path: str
    content: bytes | Path
    checksum_sha256: str | None = None
    mime_type: str | None = None

    def size(self) -> int:
        return self.content.stat().st_size if isinstance(self.content, Path) else len(self.content)


class BatchItem(ApiModel):
    """One file's outcome in a batch: `status` 201 with the new `document`, or the problem
    (`error`: its `code`, `detail`, ...) that stopped this file alone."""

    path: str
    status: int
    document: Document | None = None
    error: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return self.status == 201


class SaveResult(ApiModel):
    """Outcome of saving bytes as a version: saved, merged, or kept as a conflict copy."""

    resolution: Literal["saved", "merged", "conflict_copy"]
    document: Document
    version: Version


class DownloadLink(ApiModel):
    url: str
    expires_at: datetime | None = None
    # The version the URL serves (servers since the sync client; None from older ones).
    version_id: Id | None = None
    version_number: int | None = None
    size_bytes: int | None = None
    checksum_sha256: str | None = None

    def version(self, document_id: Id) -> Version | None:
        """What the bytes behind `url` must be (to verify them), if the server said."""
        if self.version_id is None or self.size_bytes is None or not self.checksum_sha256:
            return None
        return Version(
            id=self.version_id,
            document_id=document_id,
            version_number=self.version_number or 0,
            size_bytes=self.size_bytes,
            checksum_sha256=self.checksum_sha256,
        )


class UploadPart(ApiModel):
    """Where and how to send one part: the signed URL and the headers that must go with it."""

    part_number: int
    url: str
    method: str = "PUT"
    headers: dict[str, str] = Field(default_factory=dict)


class UploadSession(ApiModel):
    upload_id: str
    skip_upload: bool = False
    part_size: int = 0
    parts: list[UploadPart] = Field(default_factory=list)
    expires_at: datetime | None = None


class Share(ApiModel):
    """A share; `token` and `url` only come in the answer that created a link."""

    id: Id
    permission: str
    expires_at: datetime | None = None
    is_active: bool = True
    token: str | None = None
    url: str | None = None
    kind: str | None = None  # "user", "email" (no account yet), "group" or "link"
    document_id: Id | None = None
    folder_id: Id | None = None
    user_id: Id | None = None
    email: str | None = None
    group_id: Id | None = None
    group_name: str | None = None
    has_password: bool = False


class AccessVia(ApiModel):
    kind: str  # "owner", "direct", "folder", "group" or "link"
    share_id: Id | None = None
    folder_id: Id | None = None
    group_id: Id | None = None
    group_name: str | None = None
    permission: str | None = None


class Access(ApiModel):
    """A user's effective permission on a document, and why (strongest reason first)."""

    permission: str | None = None
    via: list[AccessVia] = Field(default_factory=list)
    user_id: Id | None = None


class SharedItem(ApiModel):
    """A document or folder someone shared with the caller."""

    id: Id
    name: str
    kind: str | None = None
    permission: str | None = None
    share_id: Id | None = None
    shared_by: Id | None = None
    expires_at: datetime | None = None


class LinkView(ApiModel):
    """What a link share opens: the document, or the folder with (a page of) its children."""

    kind: str | None = None
    permission: str | None = None
    expires_at: datetime | None = None
    document: Document | None = None
    folder: Folder | None = None
    items: list[Child] | None = None
    next_cursor: str | None = None


class Comment(ApiModel):
    id: Id
    author_id: Id | None = None
    body: str
    created_at: datetime | None = None
    version_id: Id | None = None
    document_id: Id | None = None


class TrashItem(ApiModel):
    kind: Literal["folder", "document"]
    id: Id
    name: str
    deleted_at: datetime | None = None
    original_parent_id: Id | None = None
    size_bytes: int | None = None


class AuditEntry(ApiModel):
    id: Id
    user_id: Id | None = None
    document_id: Id | None = None
    action: str
    ip_address: str | None = None
    user_agent: str | None = None
    timestamp: datetime


class Plan(ApiModel):
    name: str
    quota_bytes: int
    max_versions: int
    retention_days: int


class RetentionResult(ApiModel):
    versions_deleted: int
    blobs_deleted: int
    bytes_released: int
    dry_run: bool | None = None


class Health(ApiModel):
    status: str
    database: str | None = None
    storage: str | None = None
    cache: str | None = None


class Node(ApiModel):
    """A remote path resolved to a folder or a document."""

    kind: Literal["folder", "document"]
    id: Id
    name: str
    path: str
    parent_id: Id | None = None
    size_bytes: int | None = None
    current_version_id: Id | None = None


class Change(ApiModel):
    """One row of the change feed; `entry` is the item as its GET shows it, plus `path`."""

    seq: int
    kind: Literal["folder", "document"]
    id: Id
    op: str
    entry: dict[str, Any] | None = None


class ChangesPage(ApiModel):
    changes: list[Change]
    cursor: str
    has_more: bool = False


class SearchHit(ApiModel):
    """One search result; `snippet` is HTML (matched words in <mark>)."""

    kind: Literal["folder", "document"]
    id: Id
    name: str
    path: str
    mime_type: str | None = None
    size_bytes: int | None = None
    updated_at: datetime
    owner_id: Id
    permission: str
    snippet: str = ""
    score: float = 0.0
