"""Queries on upload sessions, and the one that decides whether an upload may be skipped."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from docstore.context import Actor
from docstore.documents.models import Blob, Document, DocumentVersion
from docstore.errors import NotFound
from docstore.sharing.permissions import readable
from docstore.uploads.models import UploadSession

LIVE = ("pending", "completing")
TERMINAL = ("completed", "aborted", "expired")


def lock_own(db: Session, actor: Actor, upload_id: str) -> UploadSession:
    """The caller's session, row-locked for the rest of the transaction; 404 for anyone else's."""
    session = db.scalar(
        select(UploadSession)
        .where(UploadSession.id == upload_id, UploadSession.user_id == actor.user_id)
        .with_for_update()
    )
    if session is None:
        raise NotFound("No such upload.")
    return session


def lock(db: Session, upload_id: str) -> UploadSession | None:
    """A session by id, row-locked (for background jobs)."""
    return db.scalar(select(UploadSession).where(UploadSession.id == upload_id).with_for_update())


def readable_blob_id(db: Session, actor: Actor, sha256: str, size: int) -> int | None:
    """A verified, live blob with these bytes in a version the caller can already read.

    Only this makes `skip_upload` safe: see `service.initiate` for why a bare checksum
    match is never enough.
    """
    blob_id = db.scalar(
        select(DocumentVersion.blob_id)
        .join(Document, Document.id == DocumentVersion.document_id)
        .join(Blob, Blob.id == DocumentVersion.blob_id)
        .where(
            DocumentVersion.checksum_sha256 == sha256,
            DocumentVersion.size_bytes == size,
            DocumentVersion.is_damaged.is_(False),
            readable(actor, Document),
            Blob.state == "active",
            Blob.verified.is_(True),
            Blob.damaged.is_(False),
        )
        .order_by((Document.owner_id == actor.user_id).desc(), DocumentVersion.id)
        .limit(1)
    )
    return None if blob_id is None else int(blob_id)


def can_read_blob(db: Session, actor: Actor, blob_id: int) -> bool:
    """Whether the caller can still read some version stored in `blob_id`."""
    found = db.scalar(
        select(Document.id)
        .join(DocumentVersion, DocumentVersion.document_id == Document.id)
        .where(DocumentVersion.blob_id == blob_id, readable(actor, Document))
        .limit(1)
    )
    return found is not None


def open_count(db: Session, user_id: int, now: datetime) -> int:
    """How many live, unexpired sessions the user has open (the cap counts these)."""
    return int(
        db.scalar(
            select(func.count())
            .select_from(UploadSession)
            .where(
                UploadSession.user_id == user_id,
                UploadSession.state.in_(LIVE),
                UploadSession.expires_at > now,
            )
        )
        or 0
    )


def expired_ids(db: Session, now: datetime, limit: int) -> list[str]:
    """Live sessions past their expiry, oldest first."""
    return list(
        db.scalars(
            select(UploadSession.id)
            .where(UploadSession.state.in_(LIVE), UploadSession.expires_at < now)
            .order_by(UploadSession.expires_at)
            .limit(limit)
        )
    )


def states_by_key(db: Session, keys: Sequence[str]) -> dict[str, str]:
    """The state of the session that owns each storage key (keys no session owns are absent)."""
    rows = db.execute(
        select(UploadSession.storage_key, UploadSession.state).where(
            UploadSession.storage_key.in_(list(keys))
        )
    )
    return {key: state for key, state in rows if key is not None}


def purge_finished(db: Session, expired_before: datetime, limit: int) -> int:
    """Delete up to `limit` finished sessions whose expiry is older than `expired_before`."""
    ids = (
        select(UploadSession.id)
        .where(UploadSession.state.in_(TERMINAL), UploadSession.expires_at < expired_before)
        .limit(limit)
        .scalar_subquery()
    )
    result = db.execute(
        delete(UploadSession)
        .where(UploadSession.id.in_(ids))
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]
