"""Blob garbage collection: storage objects go only when no version can reference them.

How a concurrent upload (dedup) or restore can never lose its object
------------------------------------------------------------------------
Correctness rests on row locks and a one-way state machine, not on timing:

* Every path that adds a reference to an existing blob locks the blob row and requires
  `state = 'active'` in the same transaction that inserts the version
  (`documents.blobs.find_dedup_target`, `versions.service.use_content`: SELECT ... FOR
  UPDATE). On SQLite every write transaction holds the database lock (BEGIN IMMEDIATE),
  which serialises the same way.
* GC claims a blob with one conditional UPDATE, `active -> deleting`, that requires
  `ref_count = 0` and no document_versions row pointing at it. On PostgreSQL that UPDATE
  takes the same row lock: if a dedup holds it, the row is skipped (SKIP LOCKED) or, once
  the dedup commits, re-checked against the new `ref_count` (READ COMMITTED re-evaluates
  the WHERE clause on the updated row) and left alone. Either the dedup commits first
  (ref_count >= 1, GC does not claim it) or the claim commits first (the dedup no longer
  sees an active blob and keeps its own freshly uploaded copy; a restore gets 409 and the
  client uploads again).
* `deleting` is terminal: nothing ever turns it back into `active`, so once claimed no new
  reference can appear, and only then, after the claim has committed, is the object
  deleted. The row goes after the object, so a failed storage delete leaves a `deleting`
  row that the next run retries (`delete_attempts` counts the failures).

The grace period (`blob_gc_grace_seconds` after `unreferenced_at`) is not what makes this
safe; it keeps a blob around for a while after its last version went, so an upload that
was told `skip_upload` a moment ago, or an undo of a version delete, still finds it.

Pending blobs older than `blob_pending_grace_seconds` are leftovers of an upload that
crashed between writing the bytes and committing its version; that grace outlives any
upload session. Objects with no blob row at all (a crash before the row was written) are
swept after `blob_orphan_grace_seconds`, judged by the object's own modification time.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, exists, select, update
from sqlalchemy.orm import Session

from docstore.config import Settings
from docstore.db import Database, utcnow
from docstore.documents.models import Blob, DocumentVersion
from docstore.storage.base import BlobStore, ObjectInfo

log = logging.getLogger(__name__)

# Keys docstore gives blobs (documents.blobs.new_key); the sweep never touches other keys.
BLOB_PREFIX = "blobs/"
CLAIM_BATCH = 500
SWEEP_BATCH = 1000


@dataclass
class GcResult:
    """What one GC pass did."""

    claimed_unreferenced: int = 0
    claimed_pending: int = 0
    objects_deleted: int = 0
    bytes_deleted: int = 0
    delete_failures: int = 0

    def as_dict(self) -> dict[str, Any]:
        """JSON-able summary for the job log."""
        return asdict(self)


def _unreferenced(cutoff: datetime, limit: int) -> Any:
    """Ids of active blobs no version references, unreferenced since before `cutoff`."""
    return (
        select(Blob.id)
        .where(
            Blob.state == "active",
            Blob.ref_count == 0,
            Blob.unreferenced_at < cutoff,
            ~exists().where(DocumentVersion.blob_id == Blob.id),
        )
        .order_by(Blob.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )


def claim_unreferenced(db: Session, cutoff: datetime, now: datetime, limit: int) -> int:
    """Turn up to `limit` unreferenced active blobs into `deleting` (see the module doc)."""
    ids = _unreferenced(cutoff, limit).scalar_subquery()
    result = db.execute(
        update(Blob)
        .where(
            Blob.id.in_(ids),
            # Re-checked on the locked row: a dedup that committed meanwhile wins.
            Blob.state == "active",
            Blob.ref_count == 0,
        )
        .values(state="deleting", unreferenced_at=now)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def claim_pending(db: Session, cutoff: datetime, now: datetime, limit: int) -> int:
    """Turn up to `limit` pending blobs created before `cutoff` into `deleting`."""
    ids = (
        select(Blob.id)
        .where(Blob.state == "pending", Blob.created_at < cutoff)
        .order_by(Blob.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    result = db.execute(
        update(Blob)
        .where(Blob.id.in_(ids), Blob.state == "pending")
        .values(state="deleting", unreferenced_at=now)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def _deleting_batches(database: Database, batch: int) -> Iterator[list[tuple[int, str, int]]]:
    last = 0
    while True:
        with database.transaction() as db:
            rows = [
                (r.id, r.storage_key, r.size_bytes)
                for r in db.execute(
                    select(Blob.id, Blob.storage_key, Blob.size_bytes)
                    .where(Blob.state == "deleting", Blob.id > last)
                    .order_by(Blob.id)
                    .limit(batch)
                )
            ]
        if not rows:
            return
        yield rows
        last = rows[-1][0]


def delete_claimed(database: Database, store: BlobStore, result: GcResult) -> None:
    """Delete the objects of `deleting` blobs, then their rows; failures are retried later."""
    for rows in _deleting_batches(database, CLAIM_BATCH):
        done: list[int] = []
        failed: list[int] = []
        for blob_id, key, size in rows:
            try:
                store.delete(key)
            except Exception:
                log.warning("blob %s: storage delete failed; retried next run", blob_id)
                failed.append(blob_id)
            else:
                done.append(blob_id)
                result.bytes_deleted += size
        with database.transaction() as db:
            if done:
                db.execute(
                    delete(Blob)
                    .where(Blob.id.in_(done), Blob.state == "deleting")
                    .execution_options(synchronize_session=False)
                )
            if failed:
                db.execute(
                    update(Blob)
                    .where(Blob.id.in_(failed), Blob.state == "deleting")
                    .values(delete_attempts=Blob.delete_attempts + 1)
                    .execution_options(synchronize_session=False)
                )
        result.objects_deleted += len(done)
        result.delete_failures += len(failed)


def pending_grace_seconds(settings: Settings) -> int:
    """How old a pending blob must be to be a crashed upload's: older than any upload."""
    return max(settings.blob_pending_grace_seconds, settings.upload_session_ttl_seconds + 3600)


def collect(
    database: Database, store: BlobStore, settings: Settings, *, now: datetime | None = None
) -> GcResult:
    """One GC pass: claim what is unreferenced past the grace period, then delete it.

    `now` is the clock; tests pass a later time instead of waiting for the grace period.
    """
    now = now or utcnow()
    result = GcResult()
    unref_cutoff = now - timedelta(seconds=settings.blob_gc_grace_seconds)
    pending_cutoff = now - timedelta(seconds=pending_grace_seconds(settings))
    while True:
        with database.transaction() as db:
            n = claim_unreferenced(db, unref_cutoff, now, CLAIM_BATCH)
        result.claimed_unreferenced += n
        if n < CLAIM_BATCH:
            break
    while True:
        with database.transaction() as db:
            n = claim_pending(db, pending_cutoff, now, CLAIM_BATCH)
        result.claimed_pending += n
        if n < CLAIM_BATCH:
            break
    delete_claimed(database, store, result)
    if result.objects_deleted or result.delete_failures:
        log.info("blob gc: %s", result.as_dict())
    return result


def orphans(database: Database, store: BlobStore, cutoff: datetime) -> Iterator[ObjectInfo]:
    """Stored objects under the blob prefix with no blob row, last written before `cutoff`.

    The listing is read before the rows are looked up, so an object whose row is committed
    meanwhile is never reported; one whose row is not yet committed is younger than any
    sensible grace period.
    """
    batch: list[ObjectInfo] = []

    def unknown(infos: list[ObjectInfo]) -> list[ObjectInfo]:
        with database.transaction() as db:
            known = set(
                db.scalars(
                    select(Blob.storage_key).where(Blob.storage_key.in_([i.key for i in infos]))
                )
            )
        return [i for i in infos if i.key not in known]

    for info in store.iter_objects(BLOB_PREFIX):
        if info.last_modified is None or info.last_modified >= cutoff:
            continue
        batch.append(info)
        if len(batch) >= SWEEP_BATCH:
            yield from unknown(batch)
            batch = []
    if batch:
        yield from unknown(batch)


def sweep(
    database: Database, store: BlobStore, settings: Settings, *, now: datetime | None = None
) -> dict[str, Any]:
    """Delete objects that no blob row knows of, older than the orphan grace period."""
    now = now or utcnow()
    cutoff = now - timedelta(seconds=settings.blob_orphan_grace_seconds)
    deleted = failed = size = 0
    for info in list(orphans(database, store, cutoff)):
        try:
            store.delete(info.key)
        except Exception:
            log.warning("orphan object could not be deleted; retried next sweep")
            failed += 1
        else:
            deleted += 1
            size += info.size
    if deleted or failed:
        log.info(
            "storage sweep: %d orphan objects (%d bytes) deleted, %d failed", deleted, size, failed
        )
    return {"orphans_deleted": deleted, "bytes_deleted": size, "delete_failures": failed}
