"""Shares: to a user, to a not-yet-registered email, or by link (token, expiry, password)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from docstore.db import Base, IdType, UTCDateTime, utcnow


class Share(Base):
    """A grant on a document or a folder (and so its whole subtree)."""

    __tablename__ = "shares"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    document_id: Mapped[int | None] = mapped_column(
        ForeignKey("documents.id", ondelete="CASCADE"), nullable=True
    )
    folder_id: Mapped[int | None] = mapped_column(
        ForeignKey("folders.id", ondelete="CASCADE"), nullable=True
    )
    kind: Mapped[str] = mapped_column(String(8))  # user | email | link
    shared_with_user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), nullable=True
    )
    shared_with_email: Mapped[str | None] = mapped_column(String(320), nullable=True)
    # VIEW=1 < COMMENT=2 < EDIT=3: an integer so "highest grant" is MAX().
    permission: Mapped[int] = mapped_column(Integer)
    created_by: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # SHA-256 of the link token: the token itself is shown once, at creation.
    token_hash: Mapped[str | None] = mapped_column(String(64), nullable=True, unique=True)
    password_hash: Mapped[str | None] = mapped_column(String(255), nullable=True)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    __table_args__ = (
        CheckConstraint("(document_id IS NULL) <> (folder_id IS NULL)", name="one_target"),
        CheckConstraint("permission BETWEEN 1 AND 3", name="permission_range"),
        Index("ix_shares_user_document", "shared_with_user_id", "document_id"),
        Index("ix_shares_user_folder", "shared_with_user_id", "folder_id"),
        Index("ix_shares_email", "shared_with_email"),
        Index("ix_shares_document_id", "document_id"),
        Index("ix_shares_folder_id", "folder_id"),
    )
