"""uploads: reserve the declared size of open uploads against the owner's quota

`users.reserved_bytes` is what the owner's open upload sessions will be charged;
`upload_sessions.reserved_bytes` is each session's share of it (0 once it ended). Sessions
open during the upgrade reserved nothing and release nothing.

Revision ID: 0004_upload_reservations
Revises: 0003_audit_seal_index
Create Date: 2026-12-07 01:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_upload_reservations"
down_revision: str | None = "0003_audit_seal_index"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("reserved_bytes", sa.BigInteger(), server_default="0", nullable=False)
        )
        batch_op.create_check_constraint(op.f("ck_users_reserved_nonneg"), "reserved_bytes >= 0")
    with op.batch_alter_table("upload_sessions", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("reserved_bytes", sa.BigInteger(), server_default="0", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("upload_sessions", schema=None) as batch_op:
        batch_op.drop_column("reserved_bytes")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_users_reserved_nonneg"), type_="check")
        batch_op.drop_column("reserved_bytes")
