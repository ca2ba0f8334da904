"""What a cron job sees when a backup cannot be made: a clear message and an exit code."""

from __future__ import annotations

from pathlib import Path

import pytest

from docstore.ops import backup as ops
from tests.fixtures.app import make_settings


def test_missing_pg_dump_names_the_package_and_leaves_no_snapshot(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "no-tools"))
    dest = tmp_path / "backup"
    with pytest.raises(ops.BackupError) as failed:
        ops.backup(make_settings(tmp_path, pg_url), dest, quiet=True)
    assert failed.value.exit_code == 3
    assert "pg_dump" in str(failed.value) and "postgresql-client" in str(failed.value)
    assert not (dest / "current").exists()
    assert [p.name for p in (dest / "snapshots").iterdir()] == []


def test_verify_finds_an_altered_object(sqlite_url: str, tmp_path: Path) -> None:
    settings = make_settings(tmp_path, sqlite_url)
    blobs = tmp_path / "blobs" / "objects" / "blobs"
    blobs.mkdir(parents=True)
    # A version row and its object, as an upload leaves them (inserted directly: the
    # backup only reads the database copy and storage).
    import hashlib
    import sqlite3

    data = b"the only copy" * 100
    (blobs / "k1").write_bytes(data)
    db = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"))
    with db:
        db.execute("INSERT INTO plans (name, quota_bytes, max_versions, retention_days,"
                   " created_at, updated_at) VALUES ('p', 100000, 5, 1, '2025-01-01', '2025-01-01')"
                   " ON CONFLICT DO NOTHING")  # fmt: skip
        db.execute("INSERT INTO users (id, email, name, password_hash, is_admin, is_active,"
                   " plan_name, quota_bytes, used_bytes, created_at) VALUES (1, 'a@x.org', 'A',"
                   " 'x', 0, 1, 'p', 100000, 0, '2025-01-01')")  # fmt: skip
        db.execute("INSERT INTO folders (id, owner_id, name, path, created_at, updated_at,"
                   " is_deleted, trash_root) VALUES (1, 1, '', '/1/', '2025-01-01',"
                   " '2025-01-01', 0, 0)")  # fmt: skip
        db.execute("INSERT INTO blobs (id, storage_key, sha256, size_bytes, verified, damaged,"
                   " state, ref_count, created_at, delete_attempts) VALUES (1, 'blobs/k1', ?, ?,"
                   " 1, 0, 'active', 1, '2025-01-01', 0)",
                   (hashlib.sha256(data).hexdigest(), len(data)))  # fmt: skip
        db.execute(
            "INSERT INTO documents (id, owner_id, folder_id, name, mime_type,"
            " last_version_number, created_at, updated_at, is_deleted, trash_root)"
            " VALUES (1, 1, 1, 'd', 'x/y', 1, '2025-01-01', '2025-01-01', 0, 0)"
        )
        db.execute("INSERT INTO document_versions (id, document_id, version_number, blob_id,"
                   " size_bytes, checksum_sha256, created_at, keep_forever, is_damaged)"
                   " VALUES (1, 1, 1, 1, ?, ?, '2025-01-01', 0, 0)",
                   (len(data), hashlib.sha256(data).hexdigest()))  # fmt: skip
    db.close()
    dest = tmp_path / "backup"
    result = ops.backup(settings, dest, quiet=True)
    assert result.copy is not None and result.copy.copied == 1
    assert ops.verify(dest, full=True, quiet=True).ok
    pooled = dest / "pool" / "objects" / "blobs" / "k1"
    pooled.unlink()  # a hard link: replace, never write through it into the live object
    pooled.write_bytes(b"X" + data[1:])
    checked = ops.verify(dest, full=True, quiet=True)
    assert checked.problems == ["object blobs/k1: SHA-256 differs"]
    assert (blobs / "k1").read_bytes() == data
