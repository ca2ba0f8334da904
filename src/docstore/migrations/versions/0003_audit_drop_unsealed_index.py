"""audit: drop the (seal, id) index

The sealer finds unsealed entries by id past the chain's tail (a primary-key range), so
the index served no query. It cost every audited request a seventh index entry and, as
`seal` was indexed, made each sealing UPDATE a non-HOT one that rewrote every index entry
of the row: dropping it lets PostgreSQL seal rows in place.

Revision ID: 0003_audit_seal_index
Revises: 0002_retention
Create Date: 2026-11-26 13:30:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003_audit_seal_index"
down_revision: str | None = "0002_retention"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_log_unsealed")


def downgrade() -> None:
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.create_index("ix_audit_log_unsealed", ["seal", "id"])
