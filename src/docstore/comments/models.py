"""Comments on a document, optionally tied to one version."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Text
from sqlalchemy.orm import Mapped, mapped_column

from docstore.db import Base, IdType, UTCDateTime, utcnow


class Comment(Base):
    """A comment by a user with at least COMMENT on the document."""

    __tablename__ = "comments"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"))
    version_id: Mapped[int | None] = mapped_column(
        ForeignKey("document_versions.id", ondelete="SET NULL"), nullable=True
    )
    author_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (
        Index("ix_comments_document_created", "document_id", "created_at"),
        # Deleting a version checks this foreign key (migration 0002_retention).
        Index("ix_comments_version_id", "version_id"),
    )
