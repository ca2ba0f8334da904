"""The extracted text of each document's current version and how its extraction went.

The name indexes and, on SQLite, the FTS5 tables are schema objects of migration
0013_search (not ORM models): the search statements name them directly.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from docstore.db import Base, IdType, UTCDateTime, utcnow


class IndexStatus(StrEnum):
    """Where a document's current version stands in the content index."""

    PENDING = "pending"
    INDEXED = "indexed"
    FAILED = "failed"
    SKIPPED = "skipped"


class SearchText(Base):
    """One row per document: the text of `version_id` (None: not extracted)."""

    __tablename__ = "search_texts"

    document_id: Mapped[int] = mapped_column(
        IdType, ForeignKey("documents.id", ondelete="CASCADE"), primary_key=True
    )
    version_id: Mapped[int | None] = mapped_column(IdType, nullable=True)
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(300), nullable=True)
    body: Mapped[str | None] = mapped_column(Text, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


def index_status(
    current_version_id: int | None, indexed_version_id: int | None, status: str | None
) -> IndexStatus:
    """The status GET /documents/{id} shows, from the document and its search_texts row."""
    if current_version_id is None:
        return IndexStatus.SKIPPED
    if status is None or indexed_version_id != current_version_id:
        return IndexStatus.PENDING
    return IndexStatus(status)


# Schema objects of migration 0013_search that no model describes (FTS5 tables and their
# shadow tables on SQLite; the name indexes and the tsvector column on PostgreSQL).
UNMODELLED_INDEXES = frozenset(
    {"ix_documents_search_name", "ix_folders_search_name", "ix_search_texts_tsv"}
)


def modelled(name: str | None, type_: str, table: str | None = None) -> bool:
    """False for the search index's own schema objects (Alembic's include_name hook)."""
    if type_ == "table" and name is not None:
        return not (name.startswith("search_") and name != "search_texts")
    if type_ == "index":
        return name not in UNMODELLED_INDEXES
    if type_ == "column":
        return not (table == "search_texts" and name == "tsv")
    return True
