"""Accounts, plans and API tokens."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column

from docstore.db import Base, IdType, UTCDateTime, utcnow


class Plan(Base):
    """A named set of limits: default quota, versions kept and days every version is kept."""

    __tablename__ = "plans"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    quota_bytes: Mapped[int] = mapped_column(BigInteger)
    max_versions: Mapped[int] = mapped_column(Integer)
    retention_days: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    __table_args__ = (
        CheckConstraint("quota_bytes >= 0", name="quota_nonneg"),
        CheckConstraint("max_versions >= 1", name="max_versions_pos"),
        CheckConstraint("retention_days >= 0", name="retention_nonneg"),
    )


class User(Base):
    """A person with a byte quota; `used_bytes` is the sum of their live versions' sizes,
    `reserved_bytes` the declared sizes of the open uploads they will be charged for."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(String(255))
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    # Proven by a mailed link (users/verification.py); until then pending shares to the
    # address do not apply and the account is not found as a share target by it.
    email_verified: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    plan_name: Mapped[str] = mapped_column(ForeignKey("plans.name"), default="free")
    quota_bytes: Mapped[int] = mapped_column(BigInteger)
    used_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    reserved_bytes: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    root_folder_id: Mapped[int | None] = mapped_column(
        ForeignKey("folders.id", use_alter=True, name="fk_users_root_folder_id_folders"),
        nullable=True,
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (
        CheckConstraint("used_bytes >= 0", name="used_nonneg"),
        CheckConstraint("quota_bytes >= 0", name="quota_nonneg"),
        CheckConstraint("reserved_bytes >= 0", name="reserved_nonneg"),
    )


class ApiToken(Base):
    """An opaque bearer token; only its SHA-256 is stored.

    Kinds: `api` (from `POST /auth/login`), `session` (the web UI's cookie) and
    `app_password` (named, made by its owner, no expiry: `expires_at` is NULL). The user
    agent and address are the client's when the token was issued; `last_used_at` is
    refreshed at most once a minute (users.sessions.TOUCH_INTERVAL)."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(16), default="api")  # api | session | app_password
    name: Mapped[str | None] = mapped_column(String(100), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    user_agent: Mapped[str | None] = mapped_column(String(512), nullable=True)
    ip_address: Mapped[str | None] = mapped_column(String(64), nullable=True)

    __table_args__ = (Index("ix_api_tokens_user_id", "user_id"),)


class AccountToken(Base):
    """A single-use mailed link (users/verification.py): verify an address, accept an
    invitation, reset a password or confirm a new address. Only its SHA-256 is stored."""

    __tablename__ = "account_tokens"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    purpose: Mapped[str] = mapped_column(String(16))  # verify | invite | reset | email_change
    # None for an invitation to an address with no account.
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), nullable=True
    )
    # The address the link was mailed to (for email_change: the new address).
    email: Mapped[str] = mapped_column(String(320))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    __table_args__ = (
        Index("ix_account_tokens_user_id", "user_id"),
        Index("ix_account_tokens_email", "email"),
    )
