"""content_hash: blobs' S3-verifiable content hash, and whether the plain SHA-256 is verified

Revision ID: 0014_content_hash
Revises: 0013_search
Create Date: 2026-12-07 10:10:00

`blobs.content_hash` / `blobs.block_size`: SHA-256 over the SHA-256 of each block
(docstore.hashing), what S3 proves for a multipart upload whose part size is the block
size; deduplication in S3 mode uses it. `blobs.checksum_mismatch`: the verification job
found that the bytes do not hash to the claimed SHA-256. `document_versions.checksum_verified`:
the blob's `verified`, copied so document reads need no join. `upload_sessions.content_hash`:
what the client's declared part checksums add up to.

Existing blobs keep `content_hash` NULL here: the verification job (documents.tasks,
rate-limited) reads each object once and fills it in, so the migration never reads storage.
Every existing blob was hashed by the server at upload, so existing versions are verified.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014_content_hash"
down_revision: str | None = "0013_search"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "blobs",
        sa.Column("checksum_mismatch", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.add_column("blobs", sa.Column("content_hash", sa.String(64), nullable=True))
    op.add_column("blobs", sa.Column("block_size", sa.BigInteger(), nullable=True))
    op.create_index("ix_blobs_content_hash", "blobs", ["content_hash"])
    op.add_column(
        "document_versions",
        sa.Column("checksum_verified", sa.Boolean(), nullable=False, server_default=sa.true()),
    )
    op.add_column("upload_sessions", sa.Column("content_hash", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("upload_sessions") as batch:
        batch.drop_column("content_hash")
    with op.batch_alter_table("document_versions") as batch:
        batch.drop_column("checksum_verified")
    op.drop_index("ix_blobs_content_hash", table_name="blobs")
    with op.batch_alter_table("blobs") as batch:
        batch.drop_column("block_size")
        batch.drop_column("content_hash")
        batch.drop_column("checksum_mismatch")
