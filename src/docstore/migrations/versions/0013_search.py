"""search: full-text index of names and content (issue 26)

Revision ID: 0013_search
Revises: 0012_webhooks
Create Date: 2026-12-07 07:20:00

SQLite: FTS5 tables over the live names (external content on `documents` and `folders`,
kept in step by triggers in the writing transaction) and over the extracted text
(`search_texts.body`). PostgreSQL: GIN expression indexes on the live names and a
`tsvector` column on `search_texts`, all under the `docstore_search` text search
configuration (`simple` plus `unaccent` when the extension can be created).
Permissions and trash state are never copied: the search query joins the live tables.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import docstore.db

revision: str = "0013_search"
down_revision: str | None = "0012_webhooks"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_FTS = "tokenize = 'unicode61 remove_diacritics 2', prefix = '2 3'"

_SQLITE = [
    f"CREATE VIRTUAL TABLE search_document_names USING fts5("
    f"name, content = 'documents', content_rowid = 'id', {_FTS})",
    f"CREATE VIRTUAL TABLE search_folder_names USING fts5("
    f"name, content = 'folders', content_rowid = 'id', {_FTS})",
    f"CREATE VIRTUAL TABLE search_content USING fts5("
    f"body, content = 'search_texts', content_rowid = 'document_id', {_FTS})",
]
for _table, _fts, _id, _col in (
    ("documents", "search_document_names", "id", "name"),
    ("folders", "search_folder_names", "id", "name"),
    ("search_texts", "search_content", "document_id", "body"),
):
    # Names from the constants above only (no input): S608 does not apply.
    _add = f"INSERT INTO {_fts}(rowid, {_col}) VALUES (new.{_id}, new.{_col});"  # noqa: S608
    _drop = (
        f"INSERT INTO {_fts}({_fts}, rowid, {_col}) "  # noqa: S608
        f"VALUES ('delete', old.{_id}, old.{_col});"
    )
    _SQLITE += [
        f"CREATE TRIGGER {_fts}_ai AFTER INSERT ON {_table} BEGIN {_add} END",
        f"CREATE TRIGGER {_fts}_ad AFTER DELETE ON {_table} BEGIN {_drop} END",
        f"CREATE TRIGGER {_fts}_au AFTER UPDATE OF {_col} ON {_table} BEGIN {_drop} {_add} END",
        f"INSERT INTO {_fts}({_fts}) VALUES ('rebuild')",  # noqa: S608
    ]

# The parser's token types that carry words.
_WORD_TYPES = (
    "asciiword, asciihword, hword_asciipart, word, hword, hword_part, numword, numhword, "
    "hword_numpart"
)
# A name's words: punctuation (-, _, .) separates them, so Quarterly-Report-2026.pdf is
# quarterly, report, 2026, pdf (the parser would read it as one host name).
_NAME_WORDS = (
    "CREATE FUNCTION docstore_search_name(text) RETURNS text LANGUAGE sql IMMUTABLE "
    "PARALLEL SAFE STRICT AS $$ SELECT regexp_replace($1, '[[:punct:]]+', ' ', 'g') $$"
)
_NAME_VECTOR = "to_tsvector('docstore_search'::regconfig, docstore_search_name(name))"


def upgrade() -> None:
    op.create_table(
        "search_texts",
        sa.Column("document_id", docstore.db.IdType, nullable=False),
        # The version whose text this is; another current version means "pending".
        sa.Column("version_id", docstore.db.IdType, nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=300), nullable=True),
        sa.Column("body", sa.Text(), nullable=True),
        sa.Column("updated_at", docstore.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["document_id"], ["documents.id"],
            name=op.f("fk_search_texts_document_id_documents"), ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("document_id", name=op.f("pk_search_texts")),
    )  # fmt: skip
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        for statement in _SQLITE:
            op.execute(statement)
        return
    unaccent = True
    try:
        with bind.begin_nested():
            bind.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS unaccent")
    except sa.exc.DBAPIError:
        unaccent = False  # not installed or not allowed: accents are then not folded
    op.execute("CREATE TEXT SEARCH CONFIGURATION docstore_search (COPY = simple)")
    if unaccent:
        op.execute(
            f"ALTER TEXT SEARCH CONFIGURATION docstore_search ALTER MAPPING FOR {_WORD_TYPES} "
            "WITH unaccent, simple"
        )
    op.execute(_NAME_WORDS)
    op.add_column("search_texts", sa.Column("tsv", sa.dialects.postgresql.TSVECTOR()))
    op.execute("CREATE INDEX ix_search_texts_tsv ON search_texts USING gin (tsv)")
    op.execute(f"CREATE INDEX ix_documents_search_name ON documents USING gin ({_NAME_VECTOR})")
    op.execute(f"CREATE INDEX ix_folders_search_name ON folders USING gin ({_NAME_VECTOR})")


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        for fts in ("search_document_names", "search_folder_names", "search_content"):
            for suffix in ("ai", "ad", "au"):
                op.execute(f"DROP TRIGGER IF EXISTS {fts}_{suffix}")
            op.execute(f"DROP TABLE IF EXISTS {fts}")
    else:
        op.execute("DROP INDEX IF EXISTS ix_documents_search_name")
        op.execute("DROP INDEX IF EXISTS ix_folders_search_name")
        op.execute("DROP FUNCTION IF EXISTS docstore_search_name(text)")
    op.drop_table("search_texts")
    if bind.dialect.name != "sqlite":
        op.execute("DROP TEXT SEARCH CONFIGURATION IF EXISTS docstore_search")
