"""Version retention at scale: 1,000,000 versions over 100,000 documents on PostgreSQL.

Builds the data with bulk SQL (generate_series) in a scratch database it creates and drops,
then times a dry run, the full retention run and a second, no-op run, and prints a table
with the row rates. Target: the full run under 60 s on a 2-core machine.
Writes bench/results/retention.json.

Run: .venv/bin/python bench/retention.py [--documents N] [--versions-per-document K]
(PostgreSQL from DOCSTORE_TEST_PG_DSN / DOCSTORE_TEST_PG_URL, as the tests use it.)
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import psycopg
from rich.console import Console
from rich.table import Table
from sqlalchemy import text

from docstore import migrate
from docstore.db import Database
from docstore.retention import service as retention

ADMIN_DSN = os.environ.get(
    "DOCSTORE_TEST_PG_DSN", "host=127.0.0.1 port=5432 user=postgres dbname=test"
)
URL_BASE = os.environ.get("DOCSTORE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/")
RESULTS = Path(__file__).parent / "results" / "retention.json"
USERS = 100
MAX_VERSIONS = 3
RETENTION_DAYS = 30
# Version k of a document (1 = oldest) was saved (K - k) weeks ago (see `build`).
TABLES = ("users", "folders", "documents", "blobs", "document_versions")


def build(db: Database, documents: int, per_doc: int) -> dict[str, int]:
    """Users, root folders, documents, one blob per version, versions: all set-based."""
    steps = [
        (
            "INSERT INTO plans (name, quota_bytes, max_versions, retention_days, created_at,"
            " updated_at) VALUES ('bench', 1000000000000000, :m, :d, now(), now())"
        ),
        (
            "INSERT INTO users (id, email, name, password_hash, is_admin, is_active, plan_name,"
            " quota_bytes, used_bytes, created_at)"
            " SELECT u, 'u' || u || '@bench.example', 'U' || u, 'x', false, true, 'bench',"
            " 1000000000000000, 0, now() FROM generate_series(1, :users) u"
        ),
        (
            "INSERT INTO folders (id, owner_id, parent_id, name, path, created_at, updated_at,"
            " is_deleted, trash_root)"
            " SELECT u, u, NULL, '', '/' || u || '/', now(), now(), false, false"
            " FROM generate_series(1, :users) u"
        ),
        "UPDATE users SET root_folder_id = id",
        (
            "INSERT INTO documents (id, owner_id, folder_id, name, mime_type, last_version_number,"
            " created_at, updated_at, is_deleted, trash_root)"
            " SELECT d, 1 + d % :users, 1 + d % :users, 'doc-' || d, 'text/plain', :k,"
            " now(), now(), false, false FROM generate_series(1, :docs) d"
        ),
        (
            "INSERT INTO blobs (id, storage_key, sha256, size_bytes, verified, damaged, state,"
            " ref_count, created_at, delete_attempts)"
            " SELECT b, 'blobs/bench-' || b, md5(b::text) || md5(b::text), 1000 + b % 1000,"
            " true, false, 'active', 1, now(), 0"
            " FROM generate_series(1, CAST(:docs AS bigint) * :k) b"
        ),
        (
            "INSERT INTO document_versions (id, document_id, version_number, blob_id, size_bytes,"
            " checksum_sha256, created_at, keep_forever, is_damaged)"
            " SELECT v, 1 + (v - 1) / :k, 1 + (v - 1) % :k, v, 1000 + v % 1000,"
            " md5(v::text) || md5(v::text),"
            " now() - ((:k - 1 - (v - 1) % :k) * interval '7 days'),"
            # every tenth document has its first version pinned
            " (v - 1) % :k = 0 AND ((v - 1) / :k) % 10 = 0, false"
            " FROM generate_series(1, CAST(:docs AS bigint) * :k) v"
        ),
        "UPDATE documents SET current_version_id = id * :k",
        (
            "UPDATE users u SET used_bytes = s.total FROM (SELECT d.owner_id, sum(v.size_bytes)"
            " AS total FROM document_versions v JOIN documents d ON d.id = v.document_id"
            " GROUP BY d.owner_id) s WHERE s.owner_id = u.id"
        ),
    ]
    params = {"users": USERS, "docs": documents, "k": per_doc, "m": MAX_VERSIONS}
    params["d"] = RETENTION_DAYS
    with db.engine.begin() as conn:
        for sql in steps:
            conn.execute(text(sql), params)
        last_ids = dict(zip(TABLES, (USERS, USERS, documents, documents * per_doc,
                                     documents * per_doc), strict=True))  # fmt: skip
        for table, last_id in last_ids.items():
            # The ids were given explicitly: move each sequence past them.
            conn.execute(
                text("SELECT setval(pg_get_serial_sequence(:t, 'id'), :n)"),
                {"t": table, "n": last_id},
            )
        conn.execute(text("ANALYZE"))
        counts = {
            "documents": documents,
            "document_versions": int(
                conn.execute(text("SELECT count(*) FROM document_versions")).scalar_one()
            ),
        }
    return counts


def quota_ok(db: Database) -> bool:
    """The quota invariant still holds for every user."""
    with db.engine.begin() as conn:
        bad = conn.execute(
            text(
                "SELECT count(*) FROM users u WHERE used_bytes <> (SELECT"
                " coalesce(sum(v.size_bytes), 0) FROM document_versions v"
                " JOIN documents d ON d.id = v.document_id WHERE d.owner_id = u.id)"
            )
        ).scalar_one()
    return bad == 0


HEADERS = {
    "run": "run",
    "seconds": "seconds",
    "versions_examined": "versions",
    "versions_deleted": "deleted",
    "blobs_unreferenced": "blobs freed",
    "bytes_released": "bytes released",
    "examined_per_s": "versions/s",
    "deleted_per_s": "deleted/s",
}


def render(rows: list[dict[str, Any]]) -> Table:
    """The comparison table: one row per run."""
    table = Table(title="version retention on PostgreSQL (target: full run < 60 s)")
    for key, header in HEADERS.items():
        table.add_column(header, justify="left" if key == "run" else "right")
    for row in rows:
        table.add_row(*(f"{row[k]:,}" if isinstance(row[k], int) else str(row[k]) for k in HEADERS))
    return table


def main() -> None:
    """Build, run, report, drop."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=100_000)
    parser.add_argument("--versions-per-document", type=int, default=10)
    args = parser.parse_args()
    name = f"docstore_bench_retention_{os.getpid()}"
    admin = psycopg.connect(ADMIN_DSN, autocommit=True)
    admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.execute(f'CREATE DATABASE "{name}"')
    db = Database(URL_BASE + name)
    console = Console(width=max(Console().width, 110))
    load_before = os.getloadavg()[0]
    rows: list[dict[str, Any]] = []
    try:
        migrate.upgrade(db.engine)
        started = time.perf_counter()
        counts = build(db, args.documents, args.versions_per_document)
        build_s = time.perf_counter() - started
        versions = counts["document_versions"]
        console.print(
            f"built {counts['documents']:,} documents, {versions:,} versions in {build_s:.1f} s"
        )
        for label, dry in (("dry run", True), ("full run", False), ("no-op run", False)):
            started = time.perf_counter()
            result = retention.run(db, dry_run=dry)
            seconds = time.perf_counter() - started
            rows.append(
                {
                    "run": label,
                    "seconds": round(seconds, 2),
                    "versions_examined": versions,
                    "versions_deleted": result.versions_deleted,
                    "blobs_unreferenced": result.blobs_deleted,
                    "bytes_released": result.bytes_released,
                    "examined_per_s": round(versions / seconds),
                    "deleted_per_s": round(result.versions_deleted / seconds),
                }
            )
            if not dry:
                versions -= result.versions_deleted
        invariant = quota_ok(db)
    finally:
        db.dispose()
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()
    console.print(render(rows))
    console.print(f"quota invariant after the runs: {'holds' if invariant else 'BROKEN'}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "documents": counts["documents"],
                "versions": counts["document_versions"],
                "build_seconds": round(build_s, 2),
                "plan": {"max_versions": MAX_VERSIONS, "retention_days": RETENTION_DAYS},
                "runs": rows,
                "quota_invariant": invariant,
                # The machine is shared: its load says how much CPU the run really had.
                "load_average_1m": {"before": load_before, "after": os.getloadavg()[0]},
            },
            indent=2,
        )
    )
    console.print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
