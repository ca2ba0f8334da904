"""Version retention per plan: set-based SQL over ranges of documents, on SQLite and PostgreSQL.

Kept: versions younger than the plan's `retention_days`, the current version, pinned
(`keep_forever`) versions and the plan's `max_versions` newest versions of each document.
Everything else goes. One statement per batch ranks each document's versions with
ROW_NUMBER() and deletes the rest with `DELETE ... RETURNING`; the same transaction drops
the blob references, releases the owners' quota and writes the VERSION_DELETE audit rows.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy import Select, case, delete, func, literal, select, text
from sqlalchemy.orm import Session

from docstore.audit.service import Action
from docstore.context import Actor, system_actor
from docstore.db import Database, UTCDateTime, utcnow
from docstore.documents.models import Blob, Document, DocumentVersion
from docstore.retention.release import (
    Released,
    as_removed,
    chunked,
    in_transaction,
    record_many,
    release,
)
from docstore.users.models import Plan, User

log = logging.getLogger(__name__)

# Documents per batch: each batch is one transaction, so locks are held briefly. SQLite
# has one writer: smaller batches let requests in between.
BATCH_DOCUMENTS = {"postgresql": 5000, "sqlite": 1000}

RETURNING = (
    DocumentVersion.id,
    DocumentVersion.document_id,
    DocumentVersion.blob_id,
    DocumentVersion.size_bytes,
    DocumentVersion.version_number,
)


@dataclass
class RetentionResult:
    """What a retention run removed (or, dry, would remove)."""

    versions_deleted: int = 0
    blobs_deleted: int = 0
    bytes_released: int = 0
    # Bytes of the blobs left unreferenced: storage the blob GC frees after its grace period.
    storage_bytes_freed: int = 0
    documents: int = 0
    dry_run: bool = False

    def as_dict(self) -> dict[str, Any]:
        """The result as JSON-able data (job log, CLI, API)."""
        return asdict(self)


def _cutoff(plans: list[Plan], now: datetime) -> Any:
    """Per-row `created_at` bound: versions created before it are past the retention window."""
    return case(
        {p.name: literal(now - timedelta(days=p.retention_days), UTCDateTime()) for p in plans},
        value=User.plan_name,
    )


def doomed(
    plans: list[Plan], now: datetime, lo: int, hi: int, *, ids_only: bool = False
) -> Select[Any]:
    """The versions of documents `lo < id <= hi` that retention removes, as one statement."""
    ranked = (
        select(
            *RETURNING,
            DocumentVersion.keep_forever,
            DocumentVersion.created_at,
            Document.current_version_id,
            Plan.max_versions,
            _cutoff(plans, now).label("cutoff"),
            func.row_number()
            .over(
                partition_by=DocumentVersion.document_id,
                order_by=DocumentVersion.version_number.desc(),
            )
            .label("rn"),
        )
        .join(Document, Document.id == DocumentVersion.document_id)
        .join(User, User.id == Document.owner_id)
        .join(Plan, Plan.name == User.plan_name)
        # Both sides of the join are bounded, so PostgreSQL range-scans the versions'
        # (document_id, version_number) index instead of reading every version per batch.
        .where(
            Document.id > lo,
            Document.id <= hi,
            DocumentVersion.document_id > lo,
            DocumentVersion.document_id <= hi,
        )
        .subquery("ranked")
    )
    c = ranked.c
    columns = [c.id] if ids_only else [c.id, c.document_id, c.blob_id, c.size_bytes]
    return select(*columns).where(
        c.rn > c.max_versions,
        c.keep_forever.is_(False),
        c.current_version_id.is_not(None),
        c.id != c.current_version_id,
        c.created_at < c.cutoff,
    )


def _next_range(db: Session, last: int, size: int) -> int | None:
    """The highest id of the next `size` documents after `last` (None when there are none)."""
    ids = select(Document.id).where(Document.id > last).order_by(Document.id).limit(size)
    return db.scalar(select(func.max(ids.subquery().c.id)))


def _delete_batch(
    db: Session, *, actor: Actor, plans: list[Plan], now: datetime, lo: int, hi: int
) -> Released:
    """Remove one range's doomed versions; quota, blob refs and audit in this transaction."""
    if db.get_bind().dialect.name == "postgresql":
        # The window sorts a batch's versions: keep that sort in memory, for this batch only.
        db.execute(text("SET LOCAL work_mem = '32MB'"))
    ids = doomed(plans, now, lo, hi, ids_only=True)
    stmt = (
        delete(DocumentVersion)
        # Re-checked on the row itself at delete time: a pin that committed meanwhile wins.
        .where(
            DocumentVersion.id.in_(ids.scalar_subquery()), DocumentVersion.keep_forever.is_(False)
        )
        .returning(*RETURNING)
        .execution_options(synchronize_session=False)
    )
    removed = as_removed(db.execute(stmt))
    if not removed:
        return Released()
    doc_ids = sorted({r.document_id for r in removed})
    owner_of: dict[int, int] = {}
    for chunk in chunked(doc_ids):
        rows = db.execute(select(Document.id, Document.owner_id).where(Document.id.in_(chunk)))
        owner_of.update((doc_id, owner_id) for doc_id, owner_id in rows)
    out = release(db, removed, owner_of, now)
    per_doc: dict[int, list[tuple[int, int, int]]] = defaultdict(list)
    for r in removed:
        per_doc[r.document_id].append((r.version_number, r.id, r.size_bytes))
    entries = []
    for doc_id in doc_ids:
        gone = sorted(per_doc[doc_id])
        details = {
            "reason": "retention",
            "version_numbers": [n for n, _, _ in gone],
            "version_ids": [i for _, i, _ in gone],
            "size_bytes": sum(s for _, _, s in gone),
        }
        entries.append({"document_id": doc_id, "owner_id": owner_of[doc_id], "details": details})
    record_many(db, actor, Action.VERSION_DELETE, entries)
    return out


def run(
    database: Database,
    *,
    now: datetime | None = None,
    dry_run: bool = False,
    batch_documents: int | None = None,
    actor: Actor | None = None,
) -> RetentionResult:
    """Apply every plan's retention to every document, one transaction per batch.

    `now` is the clock (tests pass a later time instead of waiting days). A dry run runs
    the same selection and reports the same numbers without changing anything. The audit
    rows name `actor` (the admin who asked), or the worker.
    """
    now = now or utcnow()
    actor = actor or system_actor()
    batch_documents = batch_documents or BATCH_DOCUMENTS.get(database.engine.dialect.name, 1000)
    result = RetentionResult(dry_run=dry_run)
    with database.transaction() as db:
        plans = list(db.scalars(select(Plan)))
    if not plans:
        return result
    last = 0
    would_drop: Counter[int] = Counter()
    touched: set[int] = set()
    while True:
        with database.transaction() as db:
            hi = _next_range(db, last, batch_documents)
        if hi is None:
            break
        if dry_run:
            with database.transaction() as db:
                for row in db.execute(doomed(plans, now, last, hi)):
                    result.versions_deleted += 1
                    result.bytes_released += row.size_bytes
                    would_drop[row.blob_id] += 1
                    touched.add(row.document_id)
        else:
            batch = partial(_delete_batch, actor=actor, plans=plans, now=now, lo=last, hi=hi)
            out = in_transaction(database, batch)
            result.versions_deleted += out.versions
            result.documents += out.documents
            result.bytes_released += out.bytes
            result.blobs_deleted += out.blobs_unreferenced
            result.storage_bytes_freed += out.blob_bytes
        last = hi
    if dry_run:
        result.documents = len(touched)
        _count_unreferenced(database, would_drop, result)
    log.info("retention %s: %s", "dry run" if dry_run else "run", result.as_dict())
    return result


def _count_unreferenced(database: Database, drops: Counter[int], result: RetentionResult) -> None:
    """Dry run: the blobs whose every reference would go."""
    with database.transaction() as db:
        for chunk in chunked(sorted(drops)):
            rows = db.execute(
                select(Blob.id, Blob.ref_count, Blob.size_bytes).where(Blob.id.in_(chunk))
            )
            for blob_id, ref_count, size in rows:
                if ref_count == drops[blob_id]:
                    result.blobs_deleted += 1
                    result.storage_bytes_freed += size
