"""Shares: to a user, to a not-yet-registered email, to a group, or by link (token, expiry,
password)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from docstore.db import Base, IdType, UTCDateTime, utcnow
from docstore.groups import models as _groups  # noqa: F401  (the table shares.group_id names)


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
    kind: Mapped[str] = mapped_column(String(8))  # user | email | group | link
    shared_with_user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), nullable=True
    )
    shared_with_email: Mapped[str | None] = mapped_column(String(320), nullable=True)
    # kind "group": every member of the group has the grant (groups/models.py).
    group_id: Mapped[int | None] = mapped_column(
        ForeignKey("groups.id", ondelete="CASCADE"), nullable=True
    )
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
    # When the change feed announced this share's expiry (`access_lost`): an expiry is not a
    # write, so the `changes.share_expiry` job finds it; a later PATCH of the expiry clears it.
    expiry_noticed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    __table_args__ = (
        CheckConstraint("(document_id IS NULL) <> (folder_id IS NULL)", name="one_target"),
        CheckConstraint("permission BETWEEN 1 AND 3", name="permission_range"),
        # A group share names its group and no one else; only a group share names a group.
        CheckConstraint("(kind = 'group') = (group_id IS NOT NULL)", name="group_kind"),
        CheckConstraint(
            "group_id IS NULL OR (shared_with_user_id IS NULL AND shared_with_email IS NULL)",
            name="group_only_grantee",
        ),
        Index("ix_shares_user_document", "shared_with_user_id", "document_id"),
        Index("ix_shares_user_folder", "shared_with_user_id", "folder_id"),
        Index("ix_shares_email", "shared_with_email"),
        Index("ix_shares_group_document", "group_id", "document_id"),
        Index("ix_shares_group_folder", "group_id", "folder_id"),
        Index("ix_shares_document_id", "document_id"),
        Index("ix_shares_folder_id", "folder_id"),
        Index("ix_shares_expires_at", "expires_at"),
    )
