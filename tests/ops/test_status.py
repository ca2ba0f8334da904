"""`docstore status`: versions, schema revision, contents, the jobs' last runs and the
problems the last fsck found."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from docstore.cli.main import app
from docstore.config import get_settings
from docstore.db import Database, utcnow
from docstore.retention import runs


def test_status_reports_schema_counts_jobs_and_fsck_problems(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    database = Database(sqlite_url)
    finding = {"check": "objects", "subject": "blob 7", "detail": "missing", "severity": "error"}
    start = utcnow() - timedelta(seconds=3)
    runs.record(database, runs.BLOB_GC, start, runs.Outcome(True, {"deleted": 2}))
    runs.record(database, runs.FSCK, start, runs.Outcome(False, {"findings": [finding]}))
    database.dispose()
    monkeypatch.setenv("DOCSTORE_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("DOCSTORE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DOCSTORE_SECRET_KEY", "status-test")
    get_settings.cache_clear()
    try:
        done = CliRunner().invoke(app, ["status", "--json"])
        shown = CliRunner().invoke(app, ["status"])
    finally:
        get_settings.cache_clear()
    assert done.exit_code == 0, done.output
    picture = json.loads(done.output)
    install = picture["installation"]
    assert install["schema_revision"] == install["schema_head"]
    assert install["schema_up_to_date"] is True
    assert install["database"].startswith("sqlite ")
    assert picture["counts"]["documents"] == 0
    jobs = {job["name"]: job for job in picture["jobs"]}
    assert jobs[runs.BLOB_GC]["ok"] is True and jobs[runs.BLOB_GC]["seconds"] >= 3
    assert picture["fsck"]["ok"] is False
    assert picture["fsck"]["problems"] == [finding]
    assert shown.exit_code == 0, shown.output
    assert "1 problem(s)" in shown.output and "blob 7: missing" in shown.output
