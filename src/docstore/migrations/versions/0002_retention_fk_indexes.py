"""retention: index the foreign keys that point at document_versions

Removing a version makes the database look for rows that still reference it
(documents.current_version_id, comments.version_id). Without an index each removed
version scans both tables: retention over a million versions would take hours.

Revision ID: 0002_retention
Revises: 0001
Create Date: 2026-11-26 10:50:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002_retention"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("documents", schema=None) as batch_op:
        batch_op.create_index("ix_documents_current_version_id", ["current_version_id"])
    with op.batch_alter_table("comments", schema=None) as batch_op:
        batch_op.create_index("ix_comments_version_id", ["version_id"])


def downgrade() -> None:
    with op.batch_alter_table("comments", schema=None) as batch_op:
        batch_op.drop_index("ix_comments_version_id")
    with op.batch_alter_table("documents", schema=None) as batch_op:
        batch_op.drop_index("ix_documents_current_version_id")
