"""Streaming export of the audit log as JSON Lines or CSV, in bounded memory."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any, TextIO

from sqlalchemy import or_, select

from docstore.audit.models import AuditLog
from docstore.audit.sealing import format_timestamp
from docstore.db import Database

FIELDS = (
    "id",
    "timestamp",
    "action",
    "user_id",
    "document_id",
    "folder_id",
    "share_id",
    "owner_id",
    "ip_address",
    "user_agent",
    "details",
    "seal",
)
_COLUMNS = [getattr(AuditLog, name) for name in FIELDS]


def iter_entries(
    database: Database,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    batch_size: int = 1000,
) -> Iterator[dict[str, Any]]:
    """Entries with since <= timestamp < until, oldest first, fetched in keyset batches of
    `batch_size`, each in its own short transaction: memory stays bounded and no long
    transaction holds SQLite's write lock or PostgreSQL's vacuum horizon."""
    after: tuple[datetime, int] | None = None
    while True:
        stmt = select(*_COLUMNS)
        if since is not None:
            stmt = stmt.where(AuditLog.timestamp >= since)
        if until is not None:
            stmt = stmt.where(AuditLog.timestamp < until)
        if after is not None:
            ts, last_id = after
            stmt = stmt.where(
                AuditLog.timestamp >= ts, or_(AuditLog.timestamp > ts, AuditLog.id > last_id)
            )
        stmt = stmt.order_by(AuditLog.timestamp, AuditLog.id).limit(batch_size)
        with database.transaction() as db:
            rows = db.execute(stmt).all()
        for row in rows:
            yield {name: getattr(row, name) for name in FIELDS}
        if len(rows) < batch_size:
            return
        after = (rows[-1].timestamp, rows[-1].id)


def _jsonable(entry: dict[str, Any]) -> dict[str, Any]:
    return {**entry, "timestamp": format_timestamp(entry["timestamp"])}


def write_jsonl(entries: Iterator[dict[str, Any]], out: TextIO) -> int:
    """One JSON object per line; returns how many were written."""
    n = 0
    for entry in entries:
        out.write(json.dumps(_jsonable(entry), sort_keys=True, separators=(",", ":")) + "\n")
        n += 1
    return n


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> Any:
    """A CSV cell; text a spreadsheet would run as a formula (a user agent is client-chosen)
    gets a leading apostrophe. JSON Lines is the exact, unescaped format."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def write_csv(entries: Iterator[dict[str, Any]], out: TextIO) -> int:
    """CSV with a header row; `details` is a JSON string. Returns how many were written."""
    writer = csv.writer(out)
    writer.writerow(FIELDS)
    n = 0
    for entry in entries:
        row = _jsonable(entry)
        details = row["details"]
        row["details"] = "" if details is None else json.dumps(details, sort_keys=True)
        writer.writerow([_cell(row[name]) for name in FIELDS])
        n += 1
    return n
