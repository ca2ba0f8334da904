"""Bodies of the account-security endpoints: password change, sessions, app passwords."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, Field

from docstore.schemas import Page
from docstore.users.passwords import MAX_LENGTH, NewPassword


class PasswordChangeIn(BaseModel):
    """`POST /users/me/password`."""

    current_password: str = Field(max_length=MAX_LENGTH)
    new_password: NewPassword


MAX_NAME = 100
# Any text with something visible, but no control (C0, C1, DEL), line or paragraph
# separator or bidi control character (as display names, names.clean_display_name).
_NOT_NAME = r"\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069"
NAME_PATTERN = rf"^[^{_NOT_NAME}]*[^\s{_NOT_NAME}][^{_NOT_NAME}]*$"
_NAME = re.compile(NAME_PATTERN)


def _clean_name(raw: str) -> str:
    if not _NAME.match(raw):
        raise ValueError("a name needs a visible character and no control characters")
    return raw.strip()


# The pattern is in the OpenAPI document too (a client, or a fuzzer, can tell a valid name).
AppPasswordName = Annotated[
    str,
    Field(min_length=1, max_length=MAX_NAME, json_schema_extra={"pattern": NAME_PATTERN}),
    AfterValidator(_clean_name),
]


class AppPasswordIn(BaseModel):
    """`POST /users/me/app-passwords`: what the app password is for ("laptop", "phone")."""

    name: AppPasswordName


class AppPasswordOut(BaseModel):
    """A new app password; `token` is shown this once and works as a Bearer token and as
    the WebDAV Basic password."""

    id: int
    name: str
    token: str
    created_at: datetime


class SessionOut(BaseModel):
    """A signed-in session (a login's token or the web UI's) or an app password."""

    id: int
    kind: Literal["session", "app_password"]
    name: str | None
    user_agent: str | None
    ip_address: str | None
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None  # None: an app password, valid until revoked
    current: bool


class SessionPage(Page[SessionOut]):
    """A page of the caller's sessions and app passwords, newest first."""
