"""Request bodies of the account links."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, EmailStr, Field

from docstore.users.passwords import NewPassword


class TokenIn(BaseModel):
    """The token from a mailed link."""

    token: str = Field(min_length=1, max_length=200)


class EmailIn(BaseModel):
    """An address (the answer never says whether it has an account)."""

    email: str = Field(min_length=1, max_length=320)


class InvitationIn(BaseModel):
    """The address an administrator invites."""

    email: EmailStr


class ResetConfirmIn(BaseModel):
    """The reset link's token and the new password."""

    token: str = Field(min_length=1, max_length=200)
    password: NewPassword


class InvitationAcceptIn(BaseModel):
    """A new account for the invited address (leave out when signed in with that address)."""

    name: str = Field(min_length=1, max_length=200)
    password: NewPassword


class EmailChangeIn(BaseModel):
    """The new address, and the current password to confirm it is the account's owner."""

    email: EmailStr
    password: str = Field(min_length=1, max_length=1024)


class AcceptedOut(BaseModel):
    """A 202: the request was taken (a mail may be on its way); the same for every caller."""

    status: Literal["accepted"] = "accepted"
