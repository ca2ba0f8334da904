"""Bodies of the account-security endpoints: password change, sessions, app passwords."""

from __future__ import annotations

import unicodedata
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


def _clean_name(raw: str) -> str:
    name = unicodedata.normalize("NFC", raw).strip()
    if not name:
        raise ValueError("the name must not be empty")
    if len(name) > MAX_NAME:  # NFC may lengthen a few scripts' text
        raise ValueError(f"the name has at most {MAX_NAME} characters")
    if any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in name):
        raise ValueError("the name must not contain control or format characters")
    return name


AppPasswordName = Annotated[
    str, Field(min_length=1, max_length=MAX_NAME), AfterValidator(_clean_name)
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
