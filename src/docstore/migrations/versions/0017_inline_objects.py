"""small objects in the database

`inline_objects`: the bytes of a small object the server received whole, in the
transaction of the blob row that names it (docstore.storage.inline). The row goes with its
blob row (ON DELETE CASCADE on `blobs.storage_key`).

Revision ID: 0017_inline_objects
Revises: 0016_share_expiry
Create Date: 2026-12-08 02:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017_inline_objects"
down_revision: str | None = "0016_share_expiry"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "inline_objects",
        sa.Column("storage_key", sa.String(512), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["storage_key"],
            ["blobs.storage_key"],
            name="fk_inline_objects_storage_key_blobs",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("storage_key", name="pk_inline_objects"),
    )


def downgrade() -> None:
    # Its rows are files' only bytes: refuse rather than lose them.
    kept = op.get_bind().execute(sa.text("SELECT count(*) FROM inline_objects")).scalar()
    if kept:
        raise RuntimeError(
            f"{kept} small object(s) are stored in the database (inline_objects); "
            "a downgrade past 0017 would lose them"
        )
    op.drop_table("inline_objects")
