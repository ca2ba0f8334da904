"""Admin console bodies: accounts with their usage, storage totals, job runs, retention
preview, audit chain status."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from docstore.schemas import Page
from docstore.users.schemas import UserOut


class AdminUserOut(UserOut):
    """A user as an administrator sees it: usage, plan and whether the account may sign in."""

    is_active: bool


class AdminUserPage(Page[AdminUserOut]):
    """A page of accounts, oldest first."""


class JobRunOut(BaseModel):
    """One finished run of a job."""

    model_config = ConfigDict(from_attributes=True)

    name: str
    started_at: datetime
    finished_at: datetime
    ok: bool
    summary: dict[str, Any] | None


class BlobStateOut(BaseModel):
    """How many blobs are in one state and their stored size."""

    count: int
    bytes: int


class StorageOut(BaseModel):
    """Totals over the whole instance.

    `logical_bytes` is the sum of every version's size (what quotas count, trashed documents
    included); `referenced_bytes` the size of the distinct blobs those versions point at, so
    `dedup_saved_bytes` = logical - referenced is what deduplication saves. `stored_bytes`
    is every blob row's size (referenced or not yet collected). `pending_gc` are the blobs
    no version references (unreferenced active ones and those queued for deletion); `due`
    of them are past the GC's grace period. `last_runs` is the newest run of each job.
    """

    users: int
    documents: int
    versions: int
    logical_bytes: int
    referenced_bytes: int
    stored_bytes: int
    dedup_saved_bytes: int
    used_bytes: int
    reserved_bytes: int
    blobs: dict[str, BlobStateOut]
    pending_gc: BlobStateOut
    pending_gc_due: BlobStateOut
    last_runs: dict[str, JobRunOut | None]


class DoomedVersionOut(BaseModel):
    """A version a retention run would delete now."""

    document_id: int
    document_name: str
    owner_id: int
    owner_email: str
    version_id: int
    version_number: int
    size_bytes: int
    created_at: datetime


class RetentionPreviewOut(BaseModel):
    """The first versions retention would delete (`truncated`: there are more)."""

    items: list[DoomedVersionOut]
    truncated: bool


class AuditVerdictOut(BaseModel):
    """The outcome of checking the audit chain (see `docstore audit verify --json`)."""

    model_config = ConfigDict(extra="allow")

    ok: bool
    checked: int
    pending: int
    first_broken_id: int | None = None
    problem: str | None = None
    reason: str | None = None
    head_id: int | None = None
    head_seal: str | None = None


class AuditStatusOut(BaseModel):
    """The newest verification of the audit chain (null: never verified)."""

    last_verification: JobRunOut | None
