"""What removing versions gives back: blob references and quota, in the caller's transaction.

Every path that removes versions (retention, trash purge) deletes the rows with
`DELETE ... RETURNING` and passes exactly the returned rows here, so a version removed by
two racing jobs is accounted for once: the second DELETE returns nothing for it.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple, TypeVar

from sqlalchemy import BigInteger, Integer, bindparam, case, func, insert, literal, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from docstore.audit.models import AuditLog
from docstore.audit.service import Action
from docstore.context import Actor
from docstore.db import Database, UTCDateTime, utcnow
from docstore.documents.models import Blob
from docstore.users import repository as user_repo
from docstore.users.models import User

T = TypeVar("T")
log = logging.getLogger(__name__)
# PostgreSQL's deadlock_detected and serialization_failure: the transaction may be retried.
RETRYABLE = {"40P01", "40001"}
# Ids per IN list: well under SQLite's 32766 bound variables, cheap for PostgreSQL to plan.
CHUNK = 5000


def in_transaction(database: Database, fn: Callable[[Session], T], attempts: int = 3) -> T:
    """Run `fn` in its own transaction; retried when PostgreSQL aborts it for a deadlock.

    Bulk jobs lock many rows; two of them (retention and a purge) may meet in a different
    order. PostgreSQL then aborts one transaction, which rolled back whole and can simply run
    again.
    """
    for attempt in range(1, attempts + 1):
        try:
            with database.transaction() as db:
                return fn(db)
        except DBAPIError as exc:
            code = getattr(exc.orig, "sqlstate", None)
            if code not in RETRYABLE or attempt == attempts:
                raise
            log.warning("transaction aborted (%s), attempt %d of %d", code, attempt, attempts)
            time.sleep(0.05 * attempt)
    raise AssertionError("unreachable")


def chunked(items: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    """`items` in consecutive slices of at most `size`."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


class Removed(NamedTuple):
    """One version row as its DELETE returned it (the columns of service.RETURNING)."""

    id: int
    document_id: int
    blob_id: int
    size_bytes: int
    version_number: int


@dataclass
class Released:
    """Totals of one or more removals."""

    versions: int = 0
    documents: int = 0
    bytes: int = 0
    # Blobs whose last reference went away: the blob GC deletes them after its grace period.
    blobs_unreferenced: int = 0
    blob_bytes: int = 0

    def add(self, other: Released) -> None:
        """Accumulate another removal's totals."""
        self.versions += other.versions
        self.documents += other.documents
        self.bytes += other.bytes
        self.blobs_unreferenced += other.blobs_unreferenced
        self.blob_bytes += other.blob_bytes


def record_many(
    db: Session, actor: Actor, action: Action, entries: Sequence[dict[str, Any]]
) -> None:
    """Audit rows for many items in one bulk INSERT, as `audit.service.record` writes them.

    Retention and purge audit every document they touch; one ORM object per row would
    make the audit the slowest part of a run over a million versions.
    """
    if not entries:
        return
    base = {
        "user_id": actor.user_id,
        "document_id": None,
        "folder_id": None,
        "share_id": None,
        "owner_id": None,
        "action": action.value,
        "ip_address": actor.ip,
        "user_agent": (actor.user_agent or "")[:512] or None,
        "timestamp": utcnow(),
        "details": None,
    }
    for chunk in chunked(entries):
        db.execute(insert(AuditLog), [{**base, **e} for e in chunk])


def as_removed(rows: Iterable[Any]) -> list[Removed]:
    """Rows returned by `DELETE FROM document_versions ... RETURNING` (see `RETURNING`)."""
    return [Removed(*r) for r in rows]


def release(
    db: Session, removed: Sequence[Removed], owner_of: Mapping[int, int], now: datetime
) -> Released:
    """Drop the removed versions' blob references and give their bytes back to the owners.

    Blob rows are updated before user rows, in id order: the order a save takes its locks
    (dedup locks the blob, then the quota charge updates the owner), so the two cannot
    deadlock on PostgreSQL.
    """
    out = Released(
        versions=len(removed),
        documents=len({r.document_id for r in removed}),
        bytes=sum(r.size_bytes for r in removed),
    )
    per_blob = Counter(r.blob_id for r in removed)
    stamp = literal(now, UTCDateTime())
    for ref_count, size in _drop_refs(db, per_blob, stamp):
        if ref_count == 0:
            out.blobs_unreferenced += 1
            out.blob_bytes += size
    per_owner: dict[int, int] = defaultdict(int)
    for r in removed:
        per_owner[owner_of[r.document_id]] += r.size_bytes
    _release_quota(db, per_owner)
    return out


def _release_quota(db: Session, per_owner: Mapping[int, int]) -> None:
    """`used_bytes -= n` for each owner, in id order."""
    owners = sorted(o for o, n in per_owner.items() if n)
    if db.get_bind().dialect.name == "postgresql" and len(owners) > 1:
        gives = (
            func.unnest(
                bindparam("owners", owners, type_=ARRAY(BigInteger)),
                bindparam("sizes", [per_owner[o] for o in owners], type_=ARRAY(BigInteger)),
            )
            .table_valued("id", "n")
            .render_derived("gives")
        )
        db.execute(
            update(User)
            .where(User.id == gives.c.id)
            .values(used_bytes=User.used_bytes - gives.c.n)
            .execution_options(synchronize_session=False)
        )
        return
    for owner_id in owners:
        user_repo.release(db, owner_id, per_owner[owner_id])


def _drop_refs(db: Session, per_blob: Mapping[int, int], stamp: Any) -> Iterator[Any]:
    """`ref_count -= n` for each blob; yields every blob's new (ref_count, size_bytes)."""
    ids = sorted(per_blob)
    if db.get_bind().dialect.name == "postgresql":
        # One statement for the whole set: the ids and counts travel as two arrays.
        drops = (
            func.unnest(
                bindparam("ids", ids, type_=ARRAY(BigInteger)),
                bindparam("ns", [per_blob[i] for i in ids], type_=ARRAY(Integer)),
            )
            .table_valued("id", "n")
            .render_derived("drops")
        )
        yield from db.execute(
            update(Blob)
            .where(Blob.id == drops.c.id)
            .values(
                ref_count=Blob.ref_count - drops.c.n,
                unreferenced_at=case(
                    (Blob.ref_count == drops.c.n, stamp), else_=Blob.unreferenced_at
                ),
            )
            .returning(Blob.ref_count, Blob.size_bytes)
            .execution_options(synchronize_session=False)
        )
        return
    by_count: dict[int, list[int]] = defaultdict(list)
    for blob_id in ids:
        by_count[per_blob[blob_id]].append(blob_id)
    for n, group in sorted(by_count.items()):
        for chunk in chunked(group):
            yield from db.execute(
                update(Blob)
                .where(Blob.id.in_(chunk))
                .values(
                    ref_count=Blob.ref_count - n,
                    unreferenced_at=case((Blob.ref_count == n, stamp), else_=Blob.unreferenced_at),
                )
                .returning(Blob.ref_count, Blob.size_bytes)
                .execution_options(synchronize_session=False)
            )
