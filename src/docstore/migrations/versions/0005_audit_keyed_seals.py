"""audit: keyed seals, signed checkpoints, and a legacy checkpoint at the switch

Seals become HMAC-SHA256 under a key kept outside the database (issue 21 item 3).
Checkpoints get a `kind` and a signature (`mac`). Entries sealed before this revision keep
their plain SHA-256 seals: a `legacy` checkpoint records the last of them (its id and seal),
so verification knows where the keyed chain starts. It is written unsigned here (a
migration has no key) and signed by the first process that has the key and has anchored
nothing yet (`docstore.audit.sealing.adopt_legacy`); old prune checkpoints likewise.

Revision ID: 0005_audit_keyed_seals
Revises: 0004_upload_reservations
Create Date: 2026-12-07 01:10:00
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0005_audit_keyed_seals"
down_revision: str | None = "0004_upload_reservations"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("audit_checkpoints", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("kind", sa.String(length=16), nullable=False, server_default="prune")
        )
        batch_op.add_column(sa.Column("mac", sa.String(length=64), nullable=True))
    conn = op.get_bind()
    tail = conn.execute(
        sa.text("SELECT id, seal FROM audit_log WHERE seal IS NOT NULL ORDER BY id DESC LIMIT 1")
    ).first()
    if tail is None:
        tail = conn.execute(
            sa.text(
                "SELECT last_pruned_id, seal FROM audit_checkpoints"
                " ORDER BY last_pruned_id DESC, id DESC LIMIT 1"
            )
        ).first()
    if tail is not None:
        now = datetime.now(UTC)
        if conn.dialect.name == "sqlite":  # stored naive, as UTCDateTime does
            now = now.replace(tzinfo=None)
        checkpoints = sa.table(
            "audit_checkpoints",
            sa.column("last_pruned_id", sa.BigInteger),
            sa.column("seal", sa.String),
            sa.column("created_at", sa.DateTime(timezone=True)),
            sa.column("kind", sa.String),
        )
        conn.execute(
            checkpoints.insert().values(
                last_pruned_id=tail[0], seal=tail[1], created_at=now, kind="legacy"
            )
        )


def downgrade() -> None:
    op.execute(sa.text("DELETE FROM audit_checkpoints WHERE kind = 'legacy'"))
    with op.batch_alter_table("audit_checkpoints", schema=None) as batch_op:
        batch_op.drop_column("mac")
        batch_op.drop_column("kind")
