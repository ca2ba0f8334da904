"""Blob rows: pending before bytes land, active once verified, shared through dedup."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy import String, bindparam, delete, func, insert, select, update
from sqlalchemy.orm import Session

from docstore.db import Database, utcnow
from docstore.db.fastpath import detached, first_row
from docstore.db.sql import not_indexed
from docstore.documents.models import Blob


def new_key() -> str:
    """A storage key that says nothing about the owner, the name or the content."""
    return f"blobs/{uuid.uuid4().hex}"


def register_pending(database: Database, key: str, size: int) -> int:
    """Record, in its own committed transaction, that bytes are about to land under `key`.

    If the process dies before the version commits, the janitor finds this row after a
    grace period and deletes the object: no object stays orphaned without a trace.
    """
    with database.transaction() as db:
        return add_pending(db, key, size)


def add_pending(db: Session, key: str, size: int) -> int:
    """`register_pending` inside the caller's transaction, which must commit before the
    bytes are written."""
    row = db.connection().execute(
        _ADD_PENDING,
        {"storage_key": key, "sha256": "", "size_bytes": size, "created_at": utcnow()},
    )
    return int(row.scalar_one())


def add_pending_many(db: Session, items: list[tuple[str, int]]) -> dict[str, int]:
    """`add_pending` for many (key, size) in one multi-row INSERT: each key's blob id."""
    now = utcnow()
    rows = [{"storage_key": k, "sha256": "", "size_bytes": n, "created_at": now} for k, n in items]
    return {key: int(blob_id) for blob_id, key in db.connection().execute(_ADD_PENDING_MANY, rows)}


def _new_blob_row(state: str, *, verified: bool, ref_count: int) -> Any:
    """An INSERT of one new blob row, its key, hash, size and time bound per execution.
    Built once per kind: every upload runs one (a Core INSERT: the unit of work cost 3x
    the statement)."""
    return insert(Blob).values(
        storage_key=bindparam("storage_key"),
        sha256=bindparam("sha256"),
        size_bytes=bindparam("size_bytes"),
        created_at=bindparam("created_at"),
        state=state,
        verified=verified,
        damaged=False,
        ref_count=ref_count,
        delete_attempts=0,
    )


_PENDING_ROW = _new_blob_row("pending", verified=False, ref_count=0)
_ADD_PENDING = _PENDING_ROW.returning(Blob.id)
_ADD_PENDING_MANY = _PENDING_ROW.returning(Blob.id, Blob.storage_key)


def activate(
    db: Session,
    blob_id: int,
    sha256: str,
    size: int,
    *,
    verified: bool = True,
    content_hash: str | None = None,
    block_size: int | None = None,
) -> Blob:
    """Make a pending blob the live copy of these bytes (one reference).

    `verified`: the server hashed the bytes to `sha256` (False in S3 mode, where `sha256` is
    the client's claim until the verification job reads the object); `content_hash` /
    `block_size` only when proven (docstore.hashing). One Core UPDATE ... RETURNING instead
    of loading the row and flushing it: the unit of work cost more than the statement on
    every upload.
    """
    params = {
        "blob_id": blob_id,
        "sha256": sha256,
        "size_bytes": size,
        "verified": verified,
        "content_hash": content_hash,
        "block_size": block_size,
    }
    row = db.connection().execute(_ACTIVATE, params).one()
    return detached(Blob, row._mapping)


# What activating sets, besides the reference count (`_ACTIVATE`, `_ACTIVATE_MANY`).
_ACTIVE_VALUES: dict[str, Any] = {
    "sha256": bindparam("sha256"),
    "size_bytes": bindparam("size_bytes"),
    "verified": bindparam("verified"),
    "content_hash": bindparam("content_hash"),
    "block_size": bindparam("block_size"),
    "state": "active",
    "unreferenced_at": None,
}
_ACTIVATE = (
    update(Blob)
    .where(Blob.id == bindparam("blob_id"))
    .values(**_ACTIVE_VALUES, ref_count=1)
    .returning(*Blob.__table__.c)
)
_ACTIVATE_MANY = (
    update(Blob)
    .where(Blob.id == bindparam("blob_id"))
    .values(**_ACTIVE_VALUES, ref_count=bindparam("ref_count"))
)


def activate_many(db: Session, rows: list[dict[str, object]]) -> None:
    """`activate` for many pending blobs in one executemany, each with its reference count
    (`ref_count`: the versions about to point at it): the batch upload's blobs."""
    if rows:
        db.connection().execute(_ACTIVATE_MANY, rows)


def add_active(db: Session, key: str, sha256: str, size: int) -> Blob:
    """A new live blob row for bytes already stored and hashed by the server under `key`
    (one reference), in the caller's transaction: the small-upload path
    (documents.write_group), whose crash-time leftovers are objects without a row, which
    the storage sweep deletes; it needs no pending row first. One Core INSERT ... RETURNING.
    """
    row = (
        db.connection()
        .execute(
            _ADD_ACTIVE,
            {"storage_key": key, "sha256": sha256, "size_bytes": size, "created_at": utcnow()},
        )
        .one()
    )
    return detached(Blob, row._mapping)


_ADD_ACTIVE = _new_blob_row("active", verified=True, ref_count=1).returning(*Blob.__table__.c)


def forget_pending(database: Database, blob_id: int) -> None:
    """Drop a pending row whose object was deleted (or never written)."""
    with database.transaction() as db:
        db.execute(
            update(Blob)
            .where(Blob.id == blob_id, Blob.state == "pending")
            .values(state="deleting", unreferenced_at=utcnow())
        )


# The blobs a verified SHA-256 may deduplicate onto: verified, healthy and live.
# The state term is kept off SQLite's indexes: its planner, without statistics, answered
# the many-hash lookup's `IN` from the (state, unreferenced_at) index and so read every
# active blob per lookup (EXPLAIN QUERY PLAN); the hash's own index finds a few rows.
_DEDUPABLE = (
    Blob.verified.is_(True),
    Blob.damaged.is_(False),
    not_indexed(Blob.state) == "active",
)
# Built once: every upload looks for a copy.
_DEDUP_TARGET = (
    select(Blob)
    .where(Blob.sha256 == bindparam("sha256"), Blob.size_bytes == bindparam("size"), *_DEDUPABLE)
    .order_by(Blob.id)
    .limit(1)
    .with_for_update()
)
_DEDUP_TARGETS = (
    select(Blob)
    .where(Blob.sha256.in_(bindparam("sha256s", expanding=True)), *_DEDUPABLE)
    .order_by(Blob.id)
    .with_for_update()
)


def find_dedup_target(db: Session, sha256: str, size: int) -> Blob | None:
    """A verified, healthy, live blob with these bytes, locked against a concurrent GC.

    Safe only for bytes the server hashed itself: a checksum a client merely claims is
    never a reason to hand out someone else's object (the "Dropship" hole).
    """
    return db.scalar(_DEDUP_TARGET, {"sha256": sha256, "size": size})


# SQLite: whether any of a list of hashes has a target, the list as one JSON array so the
# statement compiles once and runs on the fast path (`fastpath.rows`); most groups of new
# files find none, and the ORM's expanding IN was a fifth of recording them (py-spy). The
# plan is still a search of ix_blobs_sha256 per hash (tests/db/test_core_rows.py).
_HASHES = func.json_each(bindparam("sha256s", type_=String)).table_valued("value")
_DEDUP_PROBE = select(Blob.id).where(Blob.sha256.in_(select(_HASHES.c.value)), *_DEDUPABLE).limit(1)


def find_dedup_targets(db: Session, keys: set[tuple[str, int]]) -> dict[tuple[str, int], Blob]:
    """`find_dedup_target` for many (sha256, size) at once, in one statement: the oldest
    such blob for each key that has one, all locked against a concurrent GC. The same rule:
    only for bytes the server hashed itself."""
    if not keys:
        return {}
    hashes = sorted({sha for sha, _ in keys})
    if db.get_bind().dialect.name == "sqlite" and not first_row(
        db, _DEDUP_PROBE, {"sha256s": json.dumps(hashes)}
    ):
        return {}  # (SQLite has no row locks: a blob found by neither is locked by neither)
    found: dict[tuple[str, int], Blob] = {}
    for blob in db.scalars(_DEDUP_TARGETS, {"sha256s": hashes}):
        key = (blob.sha256, blob.size_bytes)
        if key in keys:
            found.setdefault(key, blob)
    return found


# Built once: S3 uploads look for a copy by the content hash S3 proved.
_CONTENT_TARGET = (
    select(Blob)
    .where(
        Blob.content_hash == bindparam("content_hash"),
        Blob.block_size == bindparam("block_size"),
        Blob.size_bytes == bindparam("size"),
        # The version keeps showing the uploader's claimed SHA-256: only a blob whose
        # SHA-256 (verified or claimed alike) is that claim may stand for it.
        Blob.sha256 == bindparam("sha256"),
        Blob.checksum_mismatch.is_(False),
        Blob.damaged.is_(False),
        Blob.state == "active",
    )
    .order_by(Blob.verified.desc(), Blob.id)
    .limit(1)
    .with_for_update()
)


def find_content_target(
    db: Session, content_hash: str, block_size: int, size: int, sha256: str
) -> Blob | None:
    """A healthy, live blob with this proven content hash, locked against a concurrent GC.

    The content hash of both blobs was proven from the bytes (by S3 or by the server), so
    the bytes are the same: deduplicating hands the uploader nothing it did not send. The
    plain SHA-256 is not used to find the copy (it may be a claim), only to keep the
    version's reported checksum the uploader's own.
    """
    params = {"content_hash": content_hash, "block_size": block_size, "size": size}
    return db.scalar(_CONTENT_TARGET, {**params, "sha256": sha256})


def add_ref(db: Session, blob_id: int) -> None:
    """One more version points at the blob."""
    add_refs(db, {blob_id: 1})


def add_refs(db: Session, counts: dict[int, int]) -> None:
    """`count` more versions point at each blob, in one executemany."""
    if counts:
        rows = [{"blob_id": blob_id, "n": n} for blob_id, n in counts.items()]
        db.connection().execute(_ADD_REFS, rows)


_ADD_REFS = (
    update(Blob)
    .where(Blob.id == bindparam("blob_id"))
    .values(ref_count=Blob.ref_count + bindparam("n"), unreferenced_at=None)
)


def retire_duplicates(db: Session, duplicates: list[tuple[int, str]]) -> None:
    """Pending blobs (id, sha256) whose bytes an existing blob already holds: marked for
    deletion in the caller's transaction (the object goes after the commit, `delete_now`)."""
    if duplicates:
        rows = [{"blob_id": b, "sha256": sha, "now": utcnow()} for b, sha in duplicates]
        db.connection().execute(_RETIRE, rows)


_RETIRE = (
    update(Blob)
    .where(Blob.id == bindparam("blob_id"))
    .values(state="deleting", sha256=bindparam("sha256"), unreferenced_at=bindparam("now"))
)


def drop_ref(db: Session, blob_id: int) -> None:
    """One version fewer points at the blob; at zero, GC may take it after a grace period."""
    db.execute(
        update(Blob)
        .where(Blob.id == blob_id)
        .values(ref_count=Blob.ref_count - 1)
        .execution_options(synchronize_session=False)
    )
    db.execute(
        update(Blob)
        .where(Blob.id == blob_id, Blob.ref_count == 0)
        .values(unreferenced_at=utcnow())
        .execution_options(synchronize_session=False)
    )


def delete_now(
    store_delete: Callable[[str], None], database: Database, blob_id: int, key: str
) -> None:
    """Delete an object no version will reference (a dedup duplicate) and then its row."""
    store_delete(key)
    with database.transaction() as db:
        db.execute(delete(Blob).where(Blob.id == blob_id, Blob.state == "deleting"))
