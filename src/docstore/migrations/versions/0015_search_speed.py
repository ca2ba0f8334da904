"""search: GIN indexes without a pending list (issue 26, speed)

Revision ID: 0015_search_speed
Revises: 0014_content_hash
Create Date: 2026-12-07 10:20:00

PostgreSQL's GIN indexes buffer new entries in an unsorted pending list (`fastupdate`)
until a vacuum or 4 MiB of them: every search reads the whole list. Measured on the
search bench (100,000 names, 20,000 texts, after a bulk load and ANALYZE): 322 pending
pages on the name index made a name lookup 34 ms instead of under 1 ms, 210 on the text
index a rare word 4.5 ms instead of 0.08 ms. The names and texts are written a row at a
time (uploads, renames, the index job), so the direct insert costs little; searches then
never depend on when autovacuum last ran. SQLite: nothing to do (FTS5 merges its own
segments).
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0015_search_speed"
down_revision: str | None = "0014_content_hash"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_INDEXES = ("ix_search_texts_tsv", "ix_documents_search_name", "ix_folders_search_name")


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for index in _INDEXES:
        op.execute(f"ALTER INDEX {index} SET (fastupdate = off)")
        # The entries already pending move into the index proper.
        op.execute(f"SELECT gin_clean_pending_list('{index}'::regclass)")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for index in _INDEXES:
        op.execute(f"ALTER INDEX {index} RESET (fastupdate)")
