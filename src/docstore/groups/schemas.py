"""Group bodies: a group shows its managers and members as {id, name, email}."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, EmailStr, Field

from docstore.schemas import BodyId


class GroupIn(BaseModel):
    """A new group: its name (a display name: 1-200 characters, no control characters)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(max_length=200)


class MemberIn(BaseModel):
    """A user to add, by email or id; `manager` makes (or, for a member, unmakes) a manager."""

    model_config = ConfigDict(extra="forbid")

    email: EmailStr | None = None
    user_id: BodyId | None = None
    manager: bool | None = None


class GroupUser(BaseModel):
    """A member as a group shows them."""

    id: int
    name: str
    email: str


class GroupOut(BaseModel):
    """A group: `members` holds everyone in it, managers included; `managers` the managers."""

    id: int
    name: str
    created_by: int | None
    created_at: datetime
    managers: list[GroupUser]
    members: list[GroupUser]
    is_manager: bool = Field(description="Whether the caller manages this group")


class GroupPage(BaseModel):
    """A page of the caller's groups, oldest first."""

    items: list[GroupOut]
    next_cursor: str | None = None
