"""A webhook (its owner, URL, events, scope and delivery state) and its delivery attempts."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from docstore.db import Base, IdType, UTCDateTime, utcnow


class Webhook(Base):
    """A URL told about the changes its owner can see.

    `position` is the outbox sequence number up to which every change was delivered (or
    skipped: not visible to the owner, not one of the events): the next delivery is always
    the first matching change after it, so change N+1 never leaves before N succeeded.
    `failures` and `failing_since` describe the change at the head of the queue."""

    __tablename__ = "webhooks"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    url: Mapped[str] = mapped_column(String(2000))
    # Op names, comma-separated, sorted (a fixed vocabulary: schemas.EVENTS).
    events: Mapped[str] = mapped_column(String(200))
    folder_id: Mapped[int | None] = mapped_column(
        ForeignKey("folders.id", ondelete="CASCADE"), nullable=True
    )
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # Why the server disabled it (shown to its owner); None when paused by the owner.
    disabled_reason: Mapped[str | None] = mapped_column(String(500), nullable=True)
    # The signing secret is HMAC(server secret key, salt): the database alone cannot sign.
    secret_salt: Mapped[str] = mapped_column(String(64))
    position: Mapped[int] = mapped_column(IdType)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    failing_since: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (
        Index("ix_webhooks_owner", "owner_id", "id"),
        Index("ix_webhooks_due", "active", "next_attempt_at"),
    )


class WebhookDelivery(Base):
    """One attempt to deliver one change (or a redelivery the owner asked for)."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    webhook_id: Mapped[int] = mapped_column(ForeignKey("webhooks.id", ondelete="CASCADE"))
    change_seq: Mapped[int] = mapped_column(IdType)
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    # pending (in flight, or a queued redelivery) | delivered | failed
    status: Mapped[str] = mapped_column(String(10), default="pending")
    # A redelivery the owner asked for (one attempt, outside the webhook's queue).
    manual: Mapped[bool] = mapped_column(Boolean, default=False)
    response_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error: Mapped[str | None] = mapped_column(String(500), nullable=True)
    latency_ms: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    __table_args__ = (
        Index("ix_webhook_deliveries_webhook", "webhook_id", "id"),
        Index("ix_webhook_deliveries_status", "status", "manual"),
    )
