"""Multipart upload sessions: the server signs part URLs, the client sends bytes to storage."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from docstore.db import Base, IdType, UTCDateTime, utcnow


class UploadSession(Base):
    """One upload from initiate to complete or abort; completing twice is idempotent."""

    __tablename__ = "upload_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    # Who is charged: the owner of the target folder or document.
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    folder_id: Mapped[int | None] = mapped_column(IdType, nullable=True)
    document_id: Mapped[int | None] = mapped_column(IdType, nullable=True)
    base_version_id: Mapped[int | None] = mapped_column(IdType, nullable=True)
    link_share_id: Mapped[int | None] = mapped_column(IdType, nullable=True)
    filename: Mapped[str] = mapped_column(String(255))
    mime_type: Mapped[str | None] = mapped_column(String(255), nullable=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    # What this session holds of the owner's `reserved_bytes`: size_bytes while it is live,
    # 0 once it ended (the release and this reset are one transaction, so it happens once).
    reserved_bytes: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    checksum_sha256: Mapped[str] = mapped_column(String(64))
    # The content hash (docstore.hashing) of the part checksums the client declared and
    # that were signed into its part URLs (part size = block size); NULL when it sent none.
    content_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    part_size: Mapped[int] = mapped_column(BigInteger)
    part_count: Mapped[int] = mapped_column(Integer)
    storage_key: Mapped[str | None] = mapped_column(String(512), nullable=True)
    storage_upload_id: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    skip_upload: Mapped[bool] = mapped_column(Boolean, default=False)
    # For skip_upload: the blob the caller can already read.
    blob_id: Mapped[int | None] = mapped_column(IdType, nullable=True)
    # pending | completing | completed | aborted | expired
    state: Mapped[str] = mapped_column(String(16), default="pending")
    result_document_id: Mapped[int | None] = mapped_column(IdType, nullable=True)
    result_version_id: Mapped[int | None] = mapped_column(IdType, nullable=True)
    result_resolution: Mapped[str | None] = mapped_column(String(32), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    __table_args__ = (
        Index("ix_upload_sessions_state_expires", "state", "expires_at"),
        Index("ix_upload_sessions_user_id", "user_id"),
    )
