"""dav: WebDAV locks and dead properties (issue 23)

Revision ID: 0010_dav_locks_props
Revises: 0009_admin_job_runs
Create Date: 2026-12-07 04:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import docstore.db

revision: str = "0010_dav_locks_props"
down_revision: str | None = "0009_admin_job_runs"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "dav_locks",
        sa.Column("token", sa.String(length=80), nullable=False),
        sa.Column("root_folder_id", sa.BigInteger(), nullable=False),
        sa.Column("path", sa.String(length=4096), nullable=False),
        sa.Column("document_id", docstore.db.IdType, nullable=True),
        sa.Column("folder_id", docstore.db.IdType, nullable=True),
        sa.Column("user_id", docstore.db.IdType, nullable=False),
        sa.Column("exclusive", sa.Boolean(), nullable=False),
        sa.Column("depth_infinity", sa.Boolean(), nullable=False),
        sa.Column("owner_xml", sa.Text(), nullable=True),
        sa.Column("timeout_seconds", sa.Integer(), nullable=False),
        sa.Column("expires_at", docstore.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_at", docstore.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["document_id"], ["documents.id"],
            name=op.f("fk_dav_locks_document_id_documents"), ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["folder_id"], ["folders.id"],
            name=op.f("fk_dav_locks_folder_id_folders"), ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"],
            name=op.f("fk_dav_locks_user_id_users"), ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("token", name=op.f("pk_dav_locks")),
    )  # fmt: skip
    op.create_index("ix_dav_locks_root_folder_id_path", "dav_locks", ["root_folder_id", "path"])
    op.create_index("ix_dav_locks_document_id", "dav_locks", ["document_id"])
    op.create_index("ix_dav_locks_folder_id", "dav_locks", ["folder_id"])
    op.create_index("ix_dav_locks_user_id", "dav_locks", ["user_id"])
    op.create_table(
        "dav_properties",
        sa.Column("id", docstore.db.IdType, nullable=False),
        sa.Column("document_id", docstore.db.IdType, nullable=True),
        sa.Column("folder_id", docstore.db.IdType, nullable=True),
        sa.Column("namespace", sa.String(length=1024), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("value_xml", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["document_id"], ["documents.id"],
            name=op.f("fk_dav_properties_document_id_documents"), ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["folder_id"], ["folders.id"],
            name=op.f("fk_dav_properties_folder_id_folders"), ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dav_properties")),
    )  # fmt: skip
    op.create_index("ix_dav_properties_document_id", "dav_properties", ["document_id"])
    op.create_index("ix_dav_properties_folder_id", "dav_properties", ["folder_id"])


def downgrade() -> None:
    op.drop_index("ix_dav_properties_folder_id", table_name="dav_properties")
    op.drop_index("ix_dav_properties_document_id", table_name="dav_properties")
    op.drop_table("dav_properties")
    op.drop_index("ix_dav_locks_user_id", table_name="dav_locks")
    op.drop_index("ix_dav_locks_folder_id", table_name="dav_locks")
    op.drop_index("ix_dav_locks_document_id", table_name="dav_locks")
    op.drop_index("ix_dav_locks_root_folder_id_path", table_name="dav_locks")
    op.drop_table("dav_locks")
