"""Blob rows: pending before bytes land, active once verified, shared through dedup."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.orm import Session

from docstore.db import Database, utcnow
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
    blob = Blob(storage_key=key, sha256="", size_bytes=size, state="pending")
    db.add(blob)
    db.flush()
    return blob.id


def forget_pending(database: Database, blob_id: int) -> None:
    """Drop a pending row whose object was deleted (or never written)."""
    with database.transaction() as db:
        db.execute(
            update(Blob)
            .where(Blob.id == blob_id, Blob.state == "pending")
            .values(state="deleting", unreferenced_at=utcnow())
        )


# Built once: every upload looks for a copy.
_DEDUP_TARGET = (
    select(Blob)
    .where(
        Blob.sha256 == bindparam("sha256"),
        Blob.size_bytes == bindparam("size"),
        Blob.verified.is_(True),
        Blob.damaged.is_(False),
        Blob.state == "active",
    )
    .order_by(Blob.id)
    .limit(1)
    .with_for_update()
)


def find_dedup_target(db: Session, sha256: str, size: int) -> Blob | None:
    """A verified, healthy, live blob with these bytes, locked against a concurrent GC.

    Safe only for bytes the server hashed itself: a checksum a client merely claims is
    never a reason to hand out someone else's object (the "Dropship" hole).
    """
    return db.scalar(_DEDUP_TARGET, {"sha256": sha256, "size": size})


def add_ref(db: Session, blob_id: int) -> None:
    """One more version points at the blob."""
    db.execute(
        update(Blob)
        .where(Blob.id == blob_id)
        .values(ref_count=Blob.ref_count + 1, unreferenced_at=None)
        .execution_options(synchronize_session=False)
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
