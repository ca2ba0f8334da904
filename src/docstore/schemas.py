"""Schemas shared by every domain: problem JSON and list pages."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

import annotated_types
from fastapi.responses import JSONResponse
from pydantic import BaseModel, BeforeValidator, ConfigDict

T = TypeVar("T")

# An id in a request: outside the 64-bit range it names no row, and SQLite refuses to bind it
# (a 500 before this bound). 422 validation_error, like any other malformed field.
Id = Annotated[int, annotated_types.Interval(ge=-(2**63), le=2**63 - 1)]


def _not_a_bool(value: Any) -> Any:
    """Refuse JSON true/false where a number is expected: pydantic's lax mode reads them as
    1 and 0, and `"parent_id": true` named the row with id 1 (a schemathesis find: POST
    /folders made a folder there). A JSON number stays what JSON Schema's integer allows
    (1.0 is 1)."""
    if isinstance(value, bool):
        raise ValueError("expected an integer, not true or false")
    return value


# A number in a JSON body; an id in a JSON body (a path or query id is text: `Id`). A body
# id is bounded where every integer is a double (2^53, JavaScript's safe integers): JSON
# readers, schemathesis's generator among them, compare numbers near 2^63 as floats, and
# took 2^63 + 192 for a valid id (ids are row ids: they never come near either bound).
BodyInt = Annotated[int, BeforeValidator(_not_a_bool)]
SAFE_INTEGER = 2**53 - 1
BodyId = Annotated[
    int, annotated_types.Interval(ge=-SAFE_INTEGER, le=SAFE_INTEGER), BeforeValidator(_not_a_bool)
]


def _not_a_number(value: Any) -> Any:
    """Refuse a bare number where a time is expected (pydantic would read it as Unix time)."""
    if isinstance(value, int | float):
        raise ValueError("expected an RFC 3339 date-time, not a number")
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return value
        raise ValueError("expected an RFC 3339 date-time, not a number")
    return value


# A time in a request: an RFC 3339 string (API.md "Times are RFC 3339 UTC strings").
Timestamp = Annotated[datetime, BeforeValidator(_not_a_number)]


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


PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_REF = "#/components/schemas/Problem"


def describe_status(status: int) -> str:
    """The OpenAPI description of an error status: its problem codes."""
    return _DESCRIPTIONS.get(status, "Error")


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries declaring the problem JSON for these statuses.

    Only `application/problem+json`, the media type the server sends (`problem_response`):
    no `model`, which would make FastAPI document an `application/json` body as well.
    `docstore.openapi` adds the Problem schema to the document's components.
    """
    return {
        s: {
            "description": _DESCRIPTIONS[s],
            "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": PROBLEM_REF}}},
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
    return JSONResponse(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE)
