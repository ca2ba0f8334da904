"""Documents and their immutable versions, plus the stored objects (blobs) behind them."""

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
    UniqueConstraint,
    false,
    text,
    true,
)
from sqlalchemy.orm import Mapped, mapped_column

from docstore.db import Base, IdType, UTCDateTime, utcnow
from docstore.db.columns import SoftDelete


class Blob(Base):
    """One stored object. Many versions may point at one blob (deduplication)."""

    __tablename__ = "blobs"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    storage_key: Mapped[str] = mapped_column(String(512), unique=True)
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    # True once the server itself hashed the stored bytes and they matched `sha256`. In S3
    # mode `sha256` is the client's claim until the verification job reads the object.
    verified: Mapped[bool] = mapped_column(Boolean, default=False)
    # The verification job hashed the bytes and they do NOT match the claimed `sha256`
    # (the uploader lied or erred): never verified, never a dedup target on any hash.
    checksum_mismatch: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # docstore.hashing's content hash over `block_size` blocks, proven by storage (S3
    # checked each part's SHA-256) or by the server hashing the bytes; NULL until known
    # (blobs from before migration 0014 get it from the verification job).
    content_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    block_size: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    damaged: Mapped[bool] = mapped_column(Boolean, default=False)
    # pending: written before the storage-side complete; active: usable;
    # deleting: unreferenced and queued for storage delete (retried on failure).
    state: Mapped[str] = mapped_column(String(16), default="pending")
    ref_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # When ref_count last dropped to 0: GC waits a grace period after it.
    unreferenced_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    delete_attempts: Mapped[int] = mapped_column(Integer, default=0)

    __table_args__ = (
        CheckConstraint("ref_count >= 0", name="ref_nonneg"),
        CheckConstraint("size_bytes >= 0", name="size_nonneg"),
        Index("ix_blobs_sha256", "sha256"),
        Index("ix_blobs_content_hash", "content_hash"),
        Index("ix_blobs_state_unref", "state", "unreferenced_at"),
    )


class Document(SoftDelete, Base):
    """A named file in a folder. `current_version_id` is the single source of truth."""

    __tablename__ = "documents"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    folder_id: Mapped[int] = mapped_column(ForeignKey("folders.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(255))
    mime_type: Mapped[str] = mapped_column(String(255), default="application/octet-stream")
    current_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("document_versions.id", use_alter=True, name="fk_documents_current_version_id"),
        nullable=True,
    )
    # Highest version number handed out; bumped under the document's row lock.
    last_version_number: Mapped[int] = mapped_column(Integer, default=0)
    created_by: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (
        Index(
            "uq_documents_live_name",
            "folder_id",
            "name",
            unique=True,
            sqlite_where=text("is_deleted = 0"),
            postgresql_where=text("is_deleted = false"),
        ),
        Index("ix_documents_folder_updated", "folder_id", "updated_at"),
        Index("ix_documents_owner_trash", "owner_id", "trash_root", "deleted_at"),
        # Deleting a version checks this foreign key (migration 0002_retention).
        Index("ix_documents_current_version_id", "current_version_id"),
    )


class DocumentVersion(Base):
    """An immutable version; `is_current` is derived from `documents.current_version_id`."""

    __tablename__ = "document_versions"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"))
    version_number: Mapped[int] = mapped_column(Integer)
    blob_id: Mapped[int] = mapped_column(ForeignKey("blobs.id"))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    checksum_sha256: Mapped[str] = mapped_column(String(64))
    # Whether the server has hashed the bytes and found `checksum_sha256` (its blob's
    # `verified`, copied here so reads need no join; the verification job sets both).
    checksum_verified: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    created_by: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    keep_forever: Mapped[bool] = mapped_column(Boolean, default=False)
    # Set when a later verification found the stored bytes do not match the checksum.
    is_damaged: Mapped[bool] = mapped_column(Boolean, default=False)
    restored_from_id: Mapped[int | None] = mapped_column(IdType, nullable=True)

    __table_args__ = (
        UniqueConstraint("document_id", "version_number"),
        CheckConstraint("size_bytes >= 0", name="size_nonneg"),
        Index("ix_document_versions_blob_id", "blob_id"),
        Index("ix_document_versions_checksum", "checksum_sha256"),
        Index("ix_document_versions_created_at", "created_at"),
    )
