"""Typed exceptions built from the server's RFC 9457 problem JSON (see API.md, Errors)."""

from __future__ import annotations

from typing import Any

import httpx


class DocstoreError(Exception):
    """Any error the server (or the transfer to storage) reported; `code` is API.md's code."""

    status: int = 0
    code: str = "error"

    def __init__(
        self,
        detail: str,
        *,
        status: int | None = None,
        code: str | None = None,
        title: str | None = None,
        body: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        if status is not None:
            self.status = status
        if code is not None:
            self.code = code
        self.title = title or self.code.replace("_", " ").capitalize()
        self.body: dict[str, Any] = body or {}

    def __str__(self) -> str:
        return f"{self.detail} ({self.code})" if self.code else self.detail


class BadRequest(DocstoreError):
    status, code = 400, "bad_request"


class Unauthenticated(DocstoreError):
    status, code = 401, "unauthenticated"


class Forbidden(DocstoreError):
    status, code = 403, "forbidden"


class LinkPasswordRequired(Forbidden):
    status, code = 403, "link_password_required"


class LinkPasswordInvalid(Forbidden):
    status, code = 403, "link_password_invalid"


class NotFound(DocstoreError):
    status, code = 404, "not_found"


class Conflict(DocstoreError):
    """409 without a more specific code (e.g. deleting the current version)."""

    status, code = 409, "conflict"


class VersionConflict(Conflict):
    """The base version is not the current one; `current_version_id` is the one to rebase on."""

    status, code = 409, "version_conflict"

    @property
    def current_version_id(self) -> int | str | None:
        value: int | str | None = self.body.get("current_version_id")
        return value


class MergeConflict(VersionConflict):
    """`on_conflict=merge` found overlapping edits; nothing was saved."""

    status, code = 409, "merge_conflict"


class NameConflict(Conflict):
    status, code = 409, "name_conflict"


class Cycle(Conflict):
    status, code = 409, "cycle"


class LinkExpired(DocstoreError):
    status, code = 410, "link_expired"


class CursorExpired(DocstoreError):
    """A change-feed cursor older than the feed keeps: list again and take a new cursor."""

    status, code = 410, "cursor_expired"


class TooLarge(DocstoreError):
    status, code = 413, "too_large"


class ValidationFailed(DocstoreError):
    status, code = 422, "validation_error"


class ChecksumMismatch(DocstoreError):
    """The bytes do not hash to the declared SHA-256 (server side at complete, or a download)."""

    status, code = 422, "checksum_mismatch"


class RateLimited(DocstoreError):
    status, code = 429, "rate_limited"

    @property
    def retry_after(self) -> float | None:
        value = self.body.get("retry_after")
        return float(value) if isinstance(value, int | float) else None


class Unavailable(DocstoreError):
    """503: the database or storage did not answer; nothing was changed."""

    status, code = 503, "unavailable"


class QuotaExceeded(DocstoreError):
    status, code = 507, "quota_exceeded"


class ConnectionFailed(DocstoreError):
    """The server (or storage) could not be reached at all."""

    status, code = 0, "connection_failed"


_BY_CODE: dict[str, type[DocstoreError]] = {
    cls.code: cls
    for cls in (
        BadRequest,
        Unauthenticated,
        Forbidden,
        LinkPasswordRequired,
        LinkPasswordInvalid,
        NotFound,
        Conflict,
        VersionConflict,
        MergeConflict,
        NameConflict,
        Cycle,
        LinkExpired,
        CursorExpired,
        TooLarge,
        ValidationFailed,
        ChecksumMismatch,
        RateLimited,
        QuotaExceeded,
    )
}
_BY_STATUS: dict[int, type[DocstoreError]] = {
    400: BadRequest,
    401: Unauthenticated,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    410: LinkExpired,
    413: TooLarge,
    422: ValidationFailed,
    429: RateLimited,
    503: Unavailable,
    507: QuotaExceeded,
}


def error_from_response(response: httpx.Response) -> DocstoreError:
    """The typed exception for an error response: by problem `code`, else by status."""
    body: dict[str, Any] = {}
    try:
        parsed = response.json()
        if isinstance(parsed, dict):
            body = parsed
    except ValueError:
        pass
    code = body.get("code") if isinstance(body.get("code"), str) else None
    cls = _BY_CODE.get(code or "") or _BY_STATUS.get(response.status_code, DocstoreError)
    detail = body.get("detail") or body.get("title") or response.reason_phrase or "error"
    return cls(
        str(detail),
        status=response.status_code,
        code=code or (cls.code if cls is not DocstoreError else f"http_{response.status_code}"),
        title=body.get("title"),
        body=body,
    )


def error_from_problem(status: int, body: dict[str, Any]) -> DocstoreError:
    """The typed exception for a problem object inside an answer (a batch item's `error`)."""
    code = body.get("code") if isinstance(body.get("code"), str) else None
    cls = _BY_CODE.get(code or "") or _BY_STATUS.get(status, DocstoreError)
    detail = body.get("detail") or body.get("title") or f"HTTP {status}"
    return cls(
        str(detail),
        status=status,
        code=code or (cls.code if cls is not DocstoreError else f"http_{status}"),
        title=body.get("title"),
        body=body,
    )
