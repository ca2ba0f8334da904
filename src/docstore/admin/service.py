"""The admin console's rules: finding accounts, disabling them, storage totals, the latest
job runs, what retention would delete, and the audit chain's verification.

Every function is for administrators only (`require_admin` first, in the endpoint's call).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from io import StringIO
from typing import Any

from sqlalchemy import case, func, or_, select
from sqlalchemy.orm import Session

from docstore.audit import export
from docstore.audit.keys import signer_for
from docstore.audit.verification import Verdict, verify
from docstore.config import Settings
from docstore.context import Actor
from docstore.db import Database, utcnow
from docstore.documents.models import Blob, Document, DocumentVersion
from docstore.errors import Conflict, NotFound
from docstore.pagination import cursor_int, page
from docstore.retention import runs
from docstore.retention.models import JobRunRecord
from docstore.retention.service import doomed
from docstore.services import Services
from docstore.users.models import Plan, User
from docstore.users.service import require_admin

__all__ = ["require_admin"]

# The jobs the console reports on, in the order it shows them.
REPORTED_JOBS = (runs.RETENTION, runs.BLOB_GC, runs.FSCK, runs.AUDIT_VERIFY)
PREVIEW_BATCH_DOCUMENTS = 1000


class CannotDisableSelf(Conflict):
    """An administrator tried to disable their own account (they would lock themselves out)."""

    code, title = "conflict", "You cannot disable your own account"


def _like(q: str) -> str:
    escaped = q.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def search_users(
    db: Session, q: str | None, limit: int, cursor: str | None
) -> tuple[list[User], str | None]:
    """Accounts whose email or name contains `q` (any case), oldest first, one page."""
    after = cursor_int(cursor, "id")
    stmt = select(User)
    if q and q.strip():
        pattern = _like(q.strip())
        stmt = stmt.where(
            or_(
                func.lower(User.email).like(pattern, escape="\\"),
                func.lower(User.name).like(pattern, escape="\\"),
            )
        )
    if after is not None:
        stmt = stmt.where(User.id > after)
    rows = list(db.scalars(stmt.order_by(User.id).limit(limit + 1)))
    return page(rows, limit, lambda u: {"id": u.id})


def set_active(db: Session, actor: Actor, user_id: int, active: bool) -> User:
    """Disable or enable an account. A disabled account cannot sign in, and each of its
    tokens fails on its next request (authentication reads `is_active` with the token, in
    every process: nothing caches it). An admin cannot disable their own account."""
    if not active and user_id == actor.user_id:
        raise CannotDisableSelf("You cannot disable your own account.")
    user = db.get(User, user_id, with_for_update=True)
    if user is None:
        raise NotFound()
    user.is_active = active
    db.flush()
    return user


def _blob_totals(db: Session, grace_cutoff: datetime) -> dict[str, Any]:
    unreferenced = (Blob.ref_count == 0) & Blob.state.in_(("active", "deleting"))
    due = unreferenced & or_(
        Blob.state == "deleting",
        Blob.unreferenced_at.is_(None),
        Blob.unreferenced_at < grace_cutoff,
    )
    size = func.coalesce(func.sum(Blob.size_bytes), 0)
    by_state = {
        state: {"count": count, "bytes": int(total)}
        for state, count, total in db.execute(
            select(Blob.state, func.count(), size).group_by(Blob.state)
        )
    }

    def _sum(cond: Any) -> Any:
        return func.coalesce(func.sum(case((cond, Blob.size_bytes), else_=0)), 0)

    def _count(cond: Any) -> Any:
        return func.coalesce(func.sum(case((cond, 1), else_=0)), 0)

    row = db.execute(
        select(
            _sum(Blob.ref_count > 0),
            _count(unreferenced),
            _sum(unreferenced),
            _count(due),
            _sum(due),
        )
    ).one()
    return {
        "blobs": by_state,
        "stored_bytes": sum(s["bytes"] for s in by_state.values()),
        "referenced_bytes": int(row[0]),
        "pending_gc": {"count": int(row[1]), "bytes": int(row[2])},
        "pending_gc_due": {"count": int(row[3]), "bytes": int(row[4])},
    }


def storage(db: Session, settings: Settings, now: datetime | None = None) -> dict[str, Any]:
    """Totals over the instance (see `admin.schemas.StorageOut`) and the last job runs."""
    now = now or utcnow()
    versions, logical = db.execute(
        select(func.count(), func.coalesce(func.sum(DocumentVersion.size_bytes), 0))
    ).one()
    users, used, reserved = db.execute(
        select(
            func.count(),
            func.coalesce(func.sum(User.used_bytes), 0),
            func.coalesce(func.sum(User.reserved_bytes), 0),
        )
    ).one()
    documents = db.scalar(select(func.count()).select_from(Document)) or 0
    blobs = _blob_totals(db, now - timedelta(seconds=settings.blob_gc_grace_seconds))
    latest = runs.latest(db, REPORTED_JOBS)
    return {
        "users": users,
        "documents": documents,
        "versions": versions,
        "logical_bytes": int(logical),
        "used_bytes": int(used),
        "reserved_bytes": int(reserved),
        "dedup_saved_bytes": max(int(logical) - blobs["referenced_bytes"], 0),
        **blobs,
        "last_runs": {name: latest.get(name) for name in REPORTED_JOBS},
    }


def retention_preview(
    database: Database, limit: int, now: datetime | None = None
) -> tuple[list[dict[str, Any]], bool]:
    """The first `limit` versions (by document) that a retention run would delete now, with
    their document and owner, and whether there are more. The same selection as the run
    (`retention.service.doomed`), over ranges of documents, each in a short read."""
    now = now or utcnow()
    found: list[dict[str, Any]] = []
    with database.read_transaction() as db:
        plans = list(db.scalars(select(Plan)))
    last = 0
    while plans and len(found) <= limit:
        with database.read_transaction() as db:
            ids = (
                select(Document.id)
                .where(Document.id > last)
                .order_by(Document.id)
                .limit(PREVIEW_BATCH_DOCUMENTS)
            )
            hi = db.scalar(select(func.max(ids.subquery().c.id)))
            if hi is None:
                break
            gone = doomed(plans, now, last, hi).subquery()
            rows = db.execute(
                select(
                    gone.c.document_id,
                    Document.name,
                    Document.owner_id,
                    User.email,
                    gone.c.id,
                    DocumentVersion.version_number,
                    gone.c.size_bytes,
                    DocumentVersion.created_at,
                )
                .join(Document, Document.id == gone.c.document_id)
                .join(User, User.id == Document.owner_id)
                .join(DocumentVersion, DocumentVersion.id == gone.c.id)
                .order_by(gone.c.document_id, DocumentVersion.version_number)
                .limit(limit + 1 - len(found))
            ).all()
        keys = ("document_id", "document_name", "owner_id", "owner_email", "version_id",
                "version_number", "size_bytes", "created_at")  # fmt: skip
        found.extend(dict(zip(keys, row, strict=True)) for row in rows)
        last = hi
    return found[:limit], len(found) > limit


def verify_audit(svc: Services) -> Verdict:
    """Check the whole audit chain and the heads its anchor recorded; the verdict is
    recorded as the `audit.verify` job's latest run."""
    signer = signer_for(svc)
    return runs.timed(
        svc.database,
        runs.AUDIT_VERIFY,
        lambda: verify(svc.database, signer, anchor=True),
        lambda verdict: runs.Outcome(verdict.ok, verdict.as_dict()),
    )


def last_verification(db: Session) -> JobRunRecord | None:
    """The newest recorded verification of the audit chain."""
    return runs.latest(db, [runs.AUDIT_VERIFY]).get(runs.AUDIT_VERIFY)


def export_chunks(
    database: Database, fmt: str, since: datetime | None, until: datetime | None
) -> Iterator[str]:
    """The audit log as JSON Lines or CSV (`docstore audit export`), in chunks of a few
    hundred entries, each batch read in its own short transaction."""
    entries = export.iter_entries(database, since=since, until=until)
    first = True
    while True:
        batch = [entry for _, entry in zip(range(500), entries, strict=False)]
        if not batch and not first:
            return
        out = StringIO()
        if fmt == "csv":
            export.write_csv(iter(batch), out)
            text = out.getvalue()
            # Every chunk's writer adds the header row: only the first keeps it.
            yield text if first else text.split("\r\n", 1)[1]
        else:
            export.write_jsonl(iter(batch), out)
            yield out.getvalue()
        first = False
        if not batch:
            return
