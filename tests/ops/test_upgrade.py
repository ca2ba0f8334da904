"""An installation from the first release upgrades: a database built by the first migration
and filled in that revision's shape is migrated to head, and its data reads back through
today's models."""

from __future__ import annotations

from alembic import command
from sqlalchemy import select, text

from docstore import migrate
from docstore.audit.models import AuditLog
from docstore.db import Database, make_engine
from docstore.documents.models import Blob, Document, DocumentVersion
from docstore.folders.models import Folder
from docstore.sharing.models import Share
from docstore.users.models import User

FIRST = "0001"
NOW = "2025-01-02 03:04:05"
# Rows as the first release wrote them (its columns only, no later defaults).
ROWS = [
    "INSERT INTO plans (name, quota_bytes, max_versions, retention_days, created_at, updated_at)"
    f" VALUES ('free', 1000000, 10, 30, '{NOW}', '{NOW}')",
    "INSERT INTO users (id, email, name, password_hash, is_admin, is_active, plan_name,"
    " quota_bytes, used_bytes, created_at) VALUES (1, 'ann@example.com', 'Ann', 'x', false,"
    f" true, 'free', 1000000, 11, '{NOW}')",
    "INSERT INTO folders (id, owner_id, parent_id, name, path, created_at, updated_at,"
    f" is_deleted, trash_root) VALUES (1, 1, NULL, '', '/1/', '{NOW}', '{NOW}', false, false)",
    "INSERT INTO blobs (id, storage_key, sha256, size_bytes, verified, damaged, state,"
    f" ref_count, created_at, delete_attempts) VALUES (1, 'blobs/abc', '{'a' * 64}', 11, true,"
    f" false, 'active', 1, '{NOW}', 0)",
    "INSERT INTO documents (id, owner_id, folder_id, name, mime_type, last_version_number,"
    " created_at, updated_at, is_deleted, trash_root) VALUES (1, 1, 1, 'plan.md',"
    f" 'text/markdown', 1, '{NOW}', '{NOW}', false, false)",
    "INSERT INTO document_versions (id, document_id, version_number, blob_id, size_bytes,"
    f" checksum_sha256, created_at, keep_forever, is_damaged) VALUES (1, 1, 1, 1, 11, '{'a' * 64}',"
    f" '{NOW}', true, false)",
    "UPDATE documents SET current_version_id = 1 WHERE id = 1",
    "INSERT INTO shares (id, document_id, kind, shared_with_email, permission, created_by,"
    f" created_at, updated_at, is_active) VALUES (1, 1, 'user', 'bob@example.com', 1, 1, '{NOW}',"
    f" '{NOW}', true)",
    "INSERT INTO audit_log (id, user_id, document_id, action, timestamp)"
    f" VALUES (1, 1, 1, 'upload', '{NOW}')",
]


def test_a_first_release_database_migrates_to_head_with_its_data(empty_url: str) -> None:
    command.upgrade(migrate.alembic_config(empty_url), FIRST)
    engine = make_engine(empty_url)
    with engine.begin() as conn:
        for row in ROWS:
            conn.execute(text(row))
    migrate.upgrade(engine)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() != FIRST
    engine.dispose()
    database = Database(empty_url)
    try:
        with database.transaction() as db:
            ann = db.scalars(select(User)).one()
            assert (ann.email, ann.used_bytes, ann.plan_name) == ("ann@example.com", 11, "free")
            doc = db.get_one(Document, 1)
            assert (doc.name, doc.folder_id, doc.current_version_id) == ("plan.md", 1, 1)
            version = db.get_one(DocumentVersion, 1)
            assert (version.checksum_sha256, version.keep_forever) == ("a" * 64, True)
            blob = db.get_one(Blob, 1)
            assert (blob.storage_key, blob.ref_count, blob.state) == ("blobs/abc", 1, "active")
            assert db.get_one(Folder, 1).path == "/1/"
            share = db.get_one(Share, 1)
            assert (share.shared_with_email, share.permission, share.is_active) == (
                "bob@example.com", 1, True,
            )  # fmt: skip
            assert db.scalars(select(AuditLog.action)).all() == ["upload"]
    finally:
        database.dispose()
