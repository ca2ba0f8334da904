"""Schemas shared by every domain: problem JSON and list pages."""

from __future__ import annotations

from typing import Annotated, Any, Generic, TypeVar

import annotated_types
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict

T = TypeVar("T")

# An id in a request: outside the 64-bit range it names no row, and SQLite refuses to bind it
# (a 500 before this bound). 422 validation_error, like any other malformed field.
Id = Annotated[int, annotated_types.Interval(ge=-(2**63), le=2**63 - 1)]


class Problem(BaseModel):
    """RFC 9457 problem details, with docstore's machine-readable `code`."""

    model_config = ConfigDict(extra="allow")

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    code: str


class Page(BaseModel, Generic[T]):
    """A page of a list; pass `next_cursor` back as `cursor` for the next page."""

    items: list[T]
    next_cursor: str | None = None


_DESCRIPTIONS = {
    400: "Malformed request (bad_request)",
    401: "No, invalid or expired token (unauthenticated)",
    403: "Visible but not permitted (forbidden)",
    404: "Does not exist or is not visible to the caller (not_found)",
    409: "Conflict (name_conflict, cycle, version_conflict, merge_conflict)",
    410: "Link expired or revoked (link_expired)",
    413: "Body too large (too_large)",
    422: "Validation failed (validation_error, checksum_mismatch)",
    429: "Too many attempts or open uploads (rate_limited, too_many_uploads)",
    503: "Storage unavailable (storage_unavailable)",
    507: "Quota exceeded (quota_exceeded)",
}


_PROBLEM_REF = "#/components/schemas/Problem"


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries declaring the problem JSON for these statuses."""
    return {
        s: {
            "model": Problem,
            "description": _DESCRIPTIONS[s],
            # The body is sent as application/problem+json: give that media type the schema
            # too, or response validation (schemathesis) has nothing to check it against.
            "content": {"application/problem+json": {"schema": {"$ref": _PROBLEM_REF}}},
        }
        for s in statuses
    }


# OpenAPI request body of the endpoints that take a file's raw bytes.
RAW_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    }
}


def problem_response(status: int, code: str, title: str, detail: str, **extra: Any) -> JSONResponse:
    """An RFC 9457 problem response with docstore's `code`."""
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, "code": code}
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type="application/problem+json")
