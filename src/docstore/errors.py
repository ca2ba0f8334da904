"""Domain errors: each carries its HTTP status and machine-readable problem code."""

from __future__ import annotations

import math
from typing import Any


class DocstoreError(Exception):
    """Base of every error a service may raise; rendered as RFC 9457 problem JSON."""

    status: int = 400
    code: str = "bad_request"
    title: str = "Bad request"
    # Response headers the error adds (e.g. Retry-After); never part of the problem body.
    headers: dict[str, str] = {}  # read only: an error that adds headers sets its own

    def __init__(self, detail: str | None = None, **extra: Any) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.extra = extra


class BadRequest(DocstoreError):
    status, code, title = 400, "bad_request", "Bad request"


class Unauthenticated(DocstoreError):
    status, code, title = 401, "unauthenticated", "Authentication required"


class Forbidden(DocstoreError):
    status, code, title = 403, "forbidden", "Forbidden"


class LinkPasswordRequired(DocstoreError):
    status, code, title = 403, "link_password_required", "This link needs a password"


class LinkPasswordInvalid(DocstoreError):
    status, code, title = 403, "link_password_invalid", "Wrong link password"


class NotFound(DocstoreError):
    status, code, title = 404, "not_found", "Not found"


class VersionConflict(DocstoreError):
    status, code, title = 409, "version_conflict", "The base version is not the current one"


class MergeConflict(DocstoreError):
    status, code, title = 409, "merge_conflict", "The edits could not be merged"


class NameConflict(DocstoreError):
    status, code, title = 409, "name_conflict", "An item with this name already exists here"


class Cycle(DocstoreError):
    status, code, title = 409, "cycle", "A folder cannot move into itself or a descendant"


class Conflict(DocstoreError):
    """A state conflict without a more specific code (e.g. deleting the current version)."""

    status, code, title = 409, "conflict", "Conflict"


class Locked(DocstoreError):
    status, code, title = 423, "locked", "The item is locked"


class LinkExpired(DocstoreError):
    status, code, title = 410, "link_expired", "This link has expired or was revoked"


class CursorExpired(DocstoreError):
    status, code, title = 410, "cursor_expired", "This change-feed cursor has expired: list again"


class TooLarge(DocstoreError):
    status, code, title = 413, "too_large", "Too large"


class ValidationFailed(DocstoreError):
    status, code, title = 422, "validation_error", "Validation failed"


class ChecksumMismatch(DocstoreError):
    status, code, title = 422, "checksum_mismatch", "The bytes do not match the declared SHA-256"


class RateLimited(DocstoreError):
    status, code, title = 429, "rate_limited", "Too many attempts"

    def __init__(self, detail: str | None = None, *, retry_after: float | None = None) -> None:
        super().__init__(detail)
        if retry_after is not None:
            self.headers = {"Retry-After": str(max(1, math.ceil(retry_after)))}


class TooManyUploads(DocstoreError):
    status, code, title = 429, "too_many_uploads", "Too many open uploads"


class StorageUnavailable(DocstoreError):
    status, code, title = 503, "storage_unavailable", "Storage is unavailable"


class QuotaExceeded(DocstoreError):
    status, code, title = 507, "quota_exceeded", "Storage quota exceeded"
