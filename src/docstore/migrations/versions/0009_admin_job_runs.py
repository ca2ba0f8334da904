"""admin: a record of the latest runs of each job (retention, blob GC, fsck, audit verify)

`job_leases` keeps only the last result of the scheduled jobs; the admin console also
shows runs asked for by hand (`docstore fsck`, a retention run, an audit verification)
and whether each ended well. The writers keep only the newest few per job.

Revision ID: 0009_admin_job_runs
Revises: 0008_groups
Create Date: 2026-12-07 04:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import docstore.db

revision: str = "0009_admin_job_runs"
down_revision: str | None = "0008_groups"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "job_runs",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("started_at", docstore.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", docstore.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("summary", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_runs")),
    )
    op.create_index("ix_job_runs_name_id", "job_runs", ["name", "id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_job_runs_name_id", table_name="job_runs")
    op.drop_table("job_runs")
