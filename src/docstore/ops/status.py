"""`docstore status`: the installation's picture for a person, read without changing it."""

from __future__ import annotations

import platform
from typing import Any

from alembic.script import ScriptDirectory
from sqlalchemy import func, select, text

from docstore import migrate
from docstore.config import Settings
from docstore.db import Database
from docstore.documents.models import Blob
from docstore.ops import dbdump
from docstore.ops.backup import version
from docstore.retention import runs


def _database_size(database: Database, kind: str, url: str) -> int | None:
    if kind == "sqlite":
        path = dbdump.sqlite_path(url)
        return sum(
            p.stat().st_size for p in (path, path.with_name(path.name + "-wal")) if p.exists()
        )
    with database.transaction() as db:
        return int(db.execute(text("SELECT pg_database_size(current_database())")).scalar_one())


def collect(settings: Settings) -> dict[str, Any]:
    """Versions, schema revision (and whether it is behind), sizes, counts, the jobs' last
    runs and the problems the last fsck found."""
    url = settings.resolved_database_url
    kind = dbdump.backend(url)
    if kind == "sqlite" and not dbdump.sqlite_path(url).exists():
        raise FileNotFoundError(f"no database at {dbdump.sqlite_path(url)}")
    head = ScriptDirectory.from_config(migrate.alembic_config()).get_current_head()
    database = Database(url)
    try:
        with database.transaction() as db:
            revision = db.execute(text("SELECT version_num FROM alembic_version")).scalar()
            server = db.execute(
                text("SELECT sqlite_version()" if kind == "sqlite" else "SHOW server_version")
            ).scalar()
            counts = {
                table: int(db.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())  # noqa: S608
                for table in dbdump.COUNTED
            }
            stored = db.execute(
                select(func.count(), func.coalesce(func.sum(Blob.size_bytes), 0)).where(
                    Blob.state == "active"
                )
            ).one()
            latest = runs.latest(db)
            jobs = [
                {
                    "name": name,
                    "finished_at": row.finished_at,
                    "ok": row.ok,
                    "seconds": (row.finished_at - row.started_at).total_seconds(),
                    "summary": row.summary,
                }
                for name, row in sorted(latest.items())
            ]
        size = _database_size(database, kind, url)
    finally:
        database.dispose()
    last_fsck = latest.get(runs.FSCK)
    findings = (last_fsck.summary or {}).get("findings", []) if last_fsck else []
    return {
        "installation": {
            "docstore": version(),
            "python": platform.python_version(),
            "database": f"{kind} {server}",
            "schema_revision": revision,
            "schema_head": head,
            "schema_up_to_date": revision == head,
            "database_bytes": size,
            "storage": settings.resolved_storage_url.split("?")[0],
            "stored_objects": int(stored[0]),
            "stored_bytes": int(stored[1]),
        },
        "counts": counts,
        "jobs": jobs,
        "fsck": {
            "finished_at": last_fsck.finished_at if last_fsck else None,
            "ok": last_fsck.ok if last_fsck else None,
            "problems": [f for f in findings if f.get("severity") == "error"],
        },
    }
