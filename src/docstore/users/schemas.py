"""Account and plan request/response bodies."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, EmailStr, Field

from docstore.schemas import BodyInt
from docstore.users.passwords import NewPassword


class UserOut(BaseModel):
    """A user as the API shows it."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    email: str
    name: str
    quota_bytes: int
    used_bytes: int
    # Declared sizes of the open uploads the user will be charged for (counted as taken).
    reserved_bytes: int = 0
    plan: str = Field(validation_alias="plan_name")
    is_admin: bool
    # Whether the address was proven by a mailed link (or vouched for by an admin).
    email_verified: bool = False
    root_folder_id: int | None
    created_at: datetime


class RegisterIn(BaseModel):
    """Open sign-up."""

    email: EmailStr
    name: str = Field(min_length=1, max_length=200)
    password: NewPassword


class LoginIn(BaseModel):
    """Email and password."""

    email: str = Field(max_length=320)
    password: str = Field(max_length=1024)


class TokenOut(BaseModel):
    """A new bearer token (shown once) and its user."""

    token: str
    expires_at: datetime
    user: UserOut


class AdminUserIn(BaseModel):
    """An account created by an administrator."""

    email: EmailStr
    name: str = Field(min_length=1, max_length=200)
    password: NewPassword
    quota_bytes: BodyInt | None = Field(default=None, ge=0, le=2**63 - 1)
    plan: str | None = Field(default=None, max_length=64)
    is_admin: bool = False
    # The admin vouches for the address: pending shares to it apply at once.
    email_verified: bool = False


class AdminUserPatch(BaseModel):
    """Fields an administrator may change."""

    quota_bytes: BodyInt | None = Field(default=None, ge=0, le=2**63 - 1)
    plan: str | None = Field(default=None, max_length=64)
    is_admin: bool | None = None


class PlanIn(BaseModel):
    """A plan's limits."""

    quota_bytes: BodyInt = Field(ge=0, le=2**63 - 1)
    max_versions: BodyInt = Field(ge=1, le=1_000_000)
    retention_days: BodyInt = Field(ge=0, le=100_000)


class PlanOut(PlanIn):
    """A plan as the API shows it."""

    model_config = ConfigDict(from_attributes=True)

    name: str
