"""changes: the change-feed outbox (issue 24)

Revision ID: 0011_changes
Revises: 0010_dav_locks_props
Create Date: 2026-12-07 07:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import docstore.db

revision: str = "0011_changes"
down_revision: str | None = "0010_dav_locks_props"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "changes",
        sa.Column("seq", docstore.db.IdType, autoincrement=True, nullable=False),
        sa.Column("user_id", docstore.db.IdType, nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("item_id", docstore.db.IdType, nullable=False),
        sa.Column("op", sa.String(length=16), nullable=False),
        sa.Column("owner_id", docstore.db.IdType, nullable=False),
        sa.Column("path", sa.String(length=4096), nullable=False),
        sa.Column("old_path", sa.String(length=4096), nullable=True),
        sa.Column("actor_id", docstore.db.IdType, nullable=True),
        sa.Column("created_at", docstore.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_changes")),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_changes_user_seq", "changes", ["user_id", "seq"])
    op.create_index("ix_changes_created_at", "changes", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_changes_created_at", table_name="changes")
    op.drop_index("ix_changes_user_seq", table_name="changes")
    op.drop_table("changes")
