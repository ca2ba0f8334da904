"""The change outbox: one row per (change, user who could see it at the time).

A write that changes what users can see appends its rows in its own transaction
(`changes.service`), so a change is never lost and never reported for a write that rolled
back. The rows are fanned out at write time: `user_id` is the one user the row is for (the
owner, a sharee, a member of a group a share names), so a read is one index range
`(user_id, seq)` and "who could see it then" needs no history of shares.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, String
from sqlalchemy.orm import Mapped, mapped_column

from docstore.db import Base, IdType, UTCDateTime, utcnow


class Change(Base):
    """One change, as one user's feed sees it.

    `seq` grows in commit order (appends take a lock held to the commit on PostgreSQL;
    SQLite runs one writer at a time), so a reader that has seen `seq` never later finds a
    smaller one committed. `path` is the folder id chain (`/1/12/57/`) of the item at the
    time: a folder's own path, a document's folder's; `old_path` the one before a move.
    They scope a cursor to a subtree. No foreign keys: a row outlives a purged item.
    """

    __tablename__ = "changes"

    seq: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(IdType)
    kind: Mapped[str] = mapped_column(String(8))  # document | folder
    item_id: Mapped[int] = mapped_column(IdType)
    op: Mapped[str] = mapped_column(String(16))
    owner_id: Mapped[int] = mapped_column(IdType)
    path: Mapped[str] = mapped_column(String(4096))
    old_path: Mapped[str | None] = mapped_column(String(4096), nullable=True)
    # Who made the change (None: the system, e.g. the trash purge job).
    actor_id: Mapped[int | None] = mapped_column(IdType, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (
        Index("ix_changes_user_seq", "user_id", "seq"),
        Index("ix_changes_created_at", "created_at"),
        # SQLite: never hand out a seq again, even once every row has been pruned.
        {"sqlite_autoincrement": True},
    )
