"""Writing audit entries inside the caller's transaction, and reading them back."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TypedDict, Unpack, cast

from sqlalchemy import Table
from sqlalchemy.orm import Session

from docstore.audit import repository as repo
from docstore.audit.models import AuditLog
from docstore.audit.repository import AuditFilter, Position
from docstore.context import Actor
from docstore.db import READ_ONLY, Database, utcnow
from docstore.errors import BadRequest, Unauthenticated
from docstore.pagination import decode_cursor, encode_cursor

_INSERT = cast(Table, AuditLog.__table__).insert()
# session.info key: entries recorded in a read transaction, not yet written.
DEFERRED = "docstore.audit.deferred"


class Action(StrEnum):
    """Every action the audit log records (API.md "Audit")."""

    UPLOAD = "UPLOAD"
    DOWNLOAD = "DOWNLOAD"
    VIEW = "VIEW"
    SHARE = "SHARE"
    UNSHARE = "UNSHARE"
    DELETE = "DELETE"
    RESTORE = "RESTORE"
    PURGE = "PURGE"
    MOVE = "MOVE"
    RENAME = "RENAME"
    VERSION_DELETE = "VERSION_DELETE"
    COMMENT = "COMMENT"
    LOGIN = "LOGIN"
    LOGIN_FAILED = "LOGIN_FAILED"
    PASSWORD_CHANGE = "PASSWORD_CHANGE"  # noqa: S105 - an action name, not a password
    GROUP_CREATE = "GROUP_CREATE"
    GROUP_MEMBER_ADD = "GROUP_MEMBER_ADD"
    GROUP_MEMBER_REMOVE = "GROUP_MEMBER_REMOVE"
    PASSWORD_RESET = "PASSWORD_RESET"  # noqa: S105 -- an action name, not a password
    EMAIL_VERIFIED = "EMAIL_VERIFIED"
    LOCK = "LOCK"
    UNLOCK = "UNLOCK"
    WEBHOOK_CREATE = "WEBHOOK_CREATE"
    WEBHOOK_DELETE = "WEBHOOK_DELETE"


class Subject(TypedDict, total=False):
    """What an entry is about, beside the actor and the action (all optional)."""

    document_id: int | None
    folder_id: int | None
    share_id: int | None
    owner_id: int | None
    user_id: int | None
    details: dict[str, Any] | None


def record(db: Session, actor: Actor, action: Action, **subject: Unpack[Subject]) -> None:
    """Write an entry in the session's transaction: it commits or rolls back with the action
    it records.

    A plain INSERT, run now rather than at the next flush: the ORM's unit of work costs a
    third more CPU for a row nothing in the request reads back (audit rows have no foreign
    keys, so writing them before the rest of the flush changes nothing).
    """
    row = entry(actor, action, **subject)
    if db.info.get(READ_ONLY):
        # A read request's entry: its caller writes it with others' in one transaction,
        # and answers only once that has committed (audit.group_commit).
        db.info.setdefault(DEFERRED, []).append(row)
        return
    db.connection().execute(_INSERT, row)


def entry(actor: Actor, action: Action, **subject: Unpack[Subject]) -> dict[str, Any]:
    """The row `record` writes, for writing many at once (`insert_rows`)."""
    share_id = subject.get("share_id")
    details = subject.get("details")
    if actor.link is not None and actor.user is None:
        share_id = share_id or actor.link.id
        details = {**(details or {}), "via_link": actor.link.id}
    user_id = subject.get("user_id")
    row: dict[str, Any] = {
        "user_id": user_id if user_id is not None else actor.user_id,
        "document_id": subject.get("document_id"),
        "folder_id": subject.get("folder_id"),
        "share_id": share_id,
        "owner_id": subject.get("owner_id"),
        "action": action.value,
        "ip_address": actor.ip,
        "user_agent": (actor.user_agent or "")[:512] or None,
        "timestamp": utcnow(),
    }
    if details is not None:  # absent, not None: None would be stored as JSON 'null'
        row["details"] = details
    return row


def record_failed_attempt(
    db: Session, database: Database, actor: Actor, action: Action, **subject: Unpack[Subject]
) -> None:
    """Audit a failed sign-in or link password although the request fails: end the
    request's unit of work (rolled back; on SQLite it holds the write lock), then write the
    entry in a transaction of its own. One of the two places a request opens a second
    transaction (docs/DEVELOPING.md, "Transactions")."""
    db.rollback()
    with database.transaction() as audit_db:
        record(audit_db, actor, action, **subject)


def deferred(db: Session) -> list[dict[str, Any]]:
    """The entries a read transaction recorded, for `GroupCommit.write`."""
    rows: list[dict[str, Any]] = db.info.get(DEFERRED, [])
    return rows


def insert_rows(db: Session, rows: list[dict[str, Any]]) -> None:
    """Write entries (`entry`, or those `record` deferred): one executemany per set of
    columns given (an entry without details must not get a JSON null)."""
    by_columns: dict[frozenset[str], list[dict[str, Any]]] = {}
    for row in rows:
        by_columns.setdefault(frozenset(row), []).append(row)
    for same in by_columns.values():
        db.connection().execute(_INSERT, same)


def as_utc(value: datetime | None) -> datetime | None:
    """A query-string time as aware UTC; a time without an offset is taken as UTC."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _position(cursor: str | None) -> Position | None:
    data = decode_cursor(cursor)
    if data is None:
        return None
    try:
        ts = datetime.fromisoformat(data["t"])
        entry_id = data["i"]
    except (KeyError, TypeError, ValueError):
        raise BadRequest("The cursor is not valid.") from None
    if ts.tzinfo is None or not isinstance(entry_id, int) or isinstance(entry_id, bool):
        raise BadRequest("The cursor is not valid.")
    if not -(2**63) <= entry_id < 2**63:  # a database cannot bind it: not one of ours
        raise BadRequest("The cursor is not valid.")
    return Position(ts.astimezone(UTC), entry_id)


def list_entries(
    db: Session, actor: Actor, filters: AuditFilter, limit: int, cursor: str | None
) -> tuple[list[AuditLog], str | None]:
    """A page of the entries the caller may see, newest first.

    A stranger's query about someone else's document is not an error: it matches nothing.
    """
    if actor.user is None:
        raise Unauthenticated()
    before = _position(cursor)
    statements = repo.readable_statements(actor.user.id, actor.is_admin, filters, before)
    rows: list[AuditLog] = []
    for stmt in statements:
        rows.extend(db.scalars(stmt.limit(limit + 1)))
    rows.sort(key=lambda e: (e.timestamp, e.id), reverse=True)
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]
        next_cursor = encode_cursor({"t": last.timestamp.isoformat(), "i": last.id})
    return rows, next_cursor
