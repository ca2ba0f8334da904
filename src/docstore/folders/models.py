"""Folders with materialized id paths (`/12/57/`): rename touches one row, move one subtree."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from docstore.db import Base, IdType, UTCDateTime, utcnow
from docstore.db.columns import SoftDelete


class Folder(SoftDelete, Base):
    """A folder; `path` lists the ids from the owner's root down to this folder."""

    __tablename__ = "folders"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    parent_id: Mapped[int | None] = mapped_column(
        ForeignKey("folders.id", ondelete="CASCADE"), nullable=True
    )
    name: Mapped[str] = mapped_column(String(255))
    path: Mapped[str] = mapped_column(String(4096))
    created_by: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (
        # Subtree by path prefix: text_pattern_ops lets LIKE '/12/57/%' use the index
        # under any collation on PostgreSQL; SQLite uses the plain index (case-sensitive LIKE).
        Index(
            "ix_folders_path",
            "path",
            postgresql_ops={"path": "text_pattern_ops"},
        ),
        Index(
            "uq_folders_live_name",
            "parent_id",
            "name",
            unique=True,
            sqlite_where=text("is_deleted = 0"),
            postgresql_where=text("is_deleted = false"),
        ),
        Index("ix_folders_owner_trash", "owner_id", "trash_root", "deleted_at"),
    )
