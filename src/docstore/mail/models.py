"""The mail outbox: one row per message, written in the transaction of the event it is
about (so it commits or rolls back with it) and delivered later by the `mail.deliver` job."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from docstore.db import Base, IdType, UTCDateTime, utcnow


class OutboxMail(Base):
    """A rendered message waiting for (or past) delivery.

    The bodies may hold a single-use link: they are cleared once the message is delivered
    (the .eml file, in the embedded default, keeps the message for the admin)."""

    __tablename__ = "mail_outbox"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    to_address: Mapped[str] = mapped_column(String(320))
    template: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(300))
    body_text: Mapped[str] = mapped_column(Text, default="")
    body_html: Mapped[str] = mapped_column(Text, default="")
    # pending (waiting or retrying) | sent | failed (gave up after MAX_ATTEMPTS)
    status: Mapped[str] = mapped_column(String(8), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_error: Mapped[str | None] = mapped_column(String(500), nullable=True)
    # Where it went: "smtp://host:port" or the .eml file's path.
    delivered_to: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    __table_args__ = (Index("ix_mail_outbox_status_next", "status", "next_attempt_at"),)
