"""share expiry in the change feed

`shares.expiry_noticed_at`: when the `changes.share_expiry` job wrote `access_lost` for a
user or group share that expired (an expiry is not a write, so nothing else notices it),
and an index on `expires_at` for that job's scan.

Revision ID: 0016_share_expiry
Revises: 0015_search_speed
Create Date: 2026-12-07 10:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import docstore.db

revision: str = "0016_share_expiry"
down_revision: str | None = "0015_search_speed"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("shares") as batch:
        batch.add_column(
            sa.Column("expiry_noticed_at", docstore.db.UTCDateTime(timezone=True), nullable=True)
        )
    op.create_index("ix_shares_expires_at", "shares", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_shares_expires_at", table_name="shares")
    with op.batch_alter_table("shares") as batch:
        batch.drop_column("expiry_noticed_at")
