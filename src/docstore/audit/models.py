"""The audit log: one row per action, chained by a seal for tamper evidence."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from docstore.db import Base, IdType, UTCDateTime, utcnow


class AuditLog(Base):
    """An action on an item. No foreign keys: the record outlives what it describes."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    user_id: Mapped[int | None] = mapped_column(IdType, nullable=True)
    document_id: Mapped[int | None] = mapped_column(IdType, nullable=True)
    folder_id: Mapped[int | None] = mapped_column(IdType, nullable=True)
    share_id: Mapped[int | None] = mapped_column(IdType, nullable=True)
    # The document owner at the time, so "entries about documents I own" is one index.
    owner_id: Mapped[int | None] = mapped_column(IdType, nullable=True)
    action: Mapped[str] = mapped_column(String(32))
    ip_address: Mapped[str | None] = mapped_column(String(64), nullable=True)
    user_agent: Mapped[str | None] = mapped_column(String(512), nullable=True)
    timestamp: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    # HMAC-SHA256(audit key, previous seal || canonical bytes of this entry), filled by the
    # sealing task (plain SHA-256 for entries sealed before the key: see AuditCheckpoint).
    seal: Mapped[str | None] = mapped_column(String(64), nullable=True)

    __table_args__ = (
        Index("ix_audit_log_document_time", "document_id", "timestamp"),
        Index("ix_audit_log_user_time", "user_id", "timestamp"),
        Index("ix_audit_log_owner_time", "owner_id", "timestamp"),
        Index("ix_audit_log_action_time", "action", "timestamp"),
        Index("ix_audit_log_time", "timestamp"),
        # No index on `seal`: the sealer walks ids past the tail, and an indexed seal
        # would make every sealing UPDATE rewrite all of the row's index entries.
    )


class AuditCheckpoint(Base):
    """A point of the chain vouched for by the audit key.

    kind "prune": the seal of the last entry removed by pruning, so the rest still verifies.
    kind "legacy": the last entry sealed with the unkeyed SHA-256 scheme of before the key
    (written by migration 0004, signed once by `sealing.adopt_legacy`); entries up to it
    verify with that scheme, entries after it with the key.
    """

    __tablename__ = "audit_checkpoints"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    last_pruned_id: Mapped[int] = mapped_column(IdType)
    seal: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    kind: Mapped[str] = mapped_column(String(16), default="prune", server_default="prune")
    # HMAC of (kind, last_pruned_id, seal) under the audit key; NULL only before adoption.
    mac: Mapped[str | None] = mapped_column(String(64), nullable=True)
