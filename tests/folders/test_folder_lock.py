"""The folder row lock on PostgreSQL: it serialises name checks, and does not hold up the
foreign-key checks of rows pointing at the folder (the soak's deadlock, bench/soak.py)."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from docstore.db import make_engine
from docstore.folders import repository

pytestmark = pytest.mark.postgres


def test_folder_lock_excludes_lockers_but_not_foreign_key_checks(pg_url: str) -> None:
    engine = make_engine(pg_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO plans (name, quota_bytes, max_versions, retention_days,"
                    " created_at, updated_at) VALUES ('free', 1000, 10, 30, now(), now())"
                    " ON CONFLICT DO NOTHING"
                )
            )
            user_id = conn.execute(
                text(
                    "INSERT INTO users (email, name, password_hash, is_admin, is_active,"
                    " plan_name, quota_bytes, used_bytes, created_at) VALUES"
                    " ('lock@example.com', 'Lock', 'x', false, true, 'free', 1000, 0, now())"
                    " RETURNING id"
                )
            ).scalar_one()
            folder_id = conn.execute(
                text(
                    "INSERT INTO folders (owner_id, parent_id, name, path, created_by,"
                    " created_at, updated_at, is_deleted, trash_root)"
                    " VALUES (:u, NULL, '', '/', :u, now(), now(), false, false) RETURNING id"
                ),
                {"u": user_id},
            ).scalar_one()

        with Session(engine) as holder, engine.connect() as other:
            assert repository.lock(holder, folder_id) is not None
            other.execute(text("SET lock_timeout = '2s'"))
            # What PostgreSQL's foreign-key check does for a row that points at the folder
            # (a document inserted, or updated twice in one transaction): it must not wait.
            assert other.execute(
                text("SELECT 1 FROM folders WHERE id = :id FOR KEY SHARE"), {"id": folder_id}
            ).scalar_one()
            other.rollback()
            # Another locker does wait: name checks in the folder stay serialised.
            with pytest.raises(OperationalError, match="could not obtain lock"):
                other.execute(
                    text("SELECT 1 FROM folders WHERE id = :id FOR NO KEY UPDATE NOWAIT"),
                    {"id": folder_id},
                )
            other.rollback()
            holder.rollback()
    finally:
        engine.dispose()
