"""Versions: optimistic-locking saves (reject, conflict copy, 3-way merge), list, restore,
pin and delete."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC

from sqlalchemy import select
from sqlalchemy.orm import Session

from docstore.audit.service import Action, record
from docstore.context import Actor
from docstore.db import after_commit, on_rollback, utcnow
from docstore.documents import blobs
from docstore.documents import service as documents
from docstore.documents.dav_state import check_unlocked
from docstore.documents.models import Blob, Document, DocumentVersion
from docstore.documents.schemas import SaveOut
from docstore.errors import Conflict, MergeConflict, NotFound, VersionConflict
from docstore.folders import repository as folder_repo
from docstore.folders.models import Folder
from docstore.names import display_name_for_names, free_name, split_ext
from docstore.pagination import cursor_int, page
from docstore.services import Services
from docstore.sharing.permissions import Level, get_document_for
from docstore.users import repository as user_repo
from docstore.versions.merge import is_text_type, merge_texts
from docstore.versions.schemas import OnConflict, VersionOut

Content = documents.StoredBytes | Blob


def use_content(db: Session, content: Content) -> Blob:
    """The blob a new version points at: fresh verified bytes, or an existing live blob."""
    if isinstance(content, documents.StoredBytes):
        return documents.attach_blob(db, content)
    blob = db.scalar(select(Blob).where(Blob.id == content.id).with_for_update())
    if blob is None or blob.state != "active":
        # GC took it between the check and now: the caller must upload the bytes.
        raise Conflict("The stored content is no longer available; upload it again.")
    blobs.add_ref(db, blob.id)
    db.refresh(blob)
    return blob


def conflict_copy_name(name: str, user_name: str, taken: Callable[[str], bool]) -> str:
    """'<stem> (conflict copy by <user> <YYYY-MM-DD>)<ext>', then ' 2', ' 3', … if taken.

    Built like a name a user gives (`clean_name`, 255 bytes): the saver's display name is
    scrubbed and shortened, and only the stem is cut to fit, never the suffix.
    """
    stem, ext = split_ext(name)
    who = display_name_for_names(user_name)
    tail = f" (conflict copy by {who} {utcnow().astimezone(UTC):%Y-%m-%d})"
    return free_name(stem, tail, ext, taken, numbered=" {n}")


def _read(svc: Services, key: str, limit: int) -> bytes | None:
    with svc.store.open(key) as f:
        data = f.read(limit + 1)
    return None if len(data) > limit else bytes(data)


def _merge(
    db: Session,
    svc: Services,
    actor: Actor,
    doc: Document,
    base_version_id: int,
    incoming: Content,
) -> DocumentVersion:
    current = db.get_one(DocumentVersion, doc.current_version_id)
    base = db.scalar(
        select(DocumentVersion).where(
            DocumentVersion.id == base_version_id, DocumentVersion.document_id == doc.id
        )
    )
    conflict = {"current_version_id": current.id}
    if base is None:
        raise MergeConflict("The base version is not a version of this document.", **conflict)
    if not is_text_type(doc.mime_type):
        raise MergeConflict(f"{doc.mime_type} is not a text type: cannot merge.", **conflict)
    limit = svc.settings.merge_max_bytes
    incoming_key = (
        incoming.key if isinstance(incoming, documents.StoredBytes) else incoming.storage_key
    )
    keys = [db.get_one(Blob, v.blob_id).storage_key for v in (base, current)] + [incoming_key]
    texts = [_read(svc, key, limit) for key in keys]
    if any(t is None for t in texts):
        raise MergeConflict(f"Merging is limited to {limit} bytes per version.", **conflict)
    try:
        result = merge_texts(*texts)  # type: ignore[arg-type]
    except UnicodeDecodeError:
        raise MergeConflict("Only UTF-8 text can be merged.", **conflict) from None
    if result.data is None:
        raise MergeConflict(
            f"{result.conflicts} region(s) were edited on both sides.",
            conflicts=result.conflicts,
            **conflict,
        )
    merged = store_bytes(db, svc, result.data)
    if isinstance(incoming, documents.StoredBytes):
        # The uploaded bytes themselves are not kept: only the merge result is.
        pending_id, key = incoming.blob_id, incoming.key
        after_commit(db, lambda: svc.store.delete(key))
        after_commit(db, lambda: blobs.forget_pending(svc.database, pending_id))
    blob = documents.attach_blob(db, merged)
    return documents.add_version(db, actor, doc, blob)


def store_bytes(db: Session, svc: Services, data: bytes) -> documents.StoredBytes:
    """Write server-made bytes (a merge result) behind a pending row, undone on rollback.

    The row is written in this transaction (a separate one would wait on SQLite's write
    lock, which this transaction holds); a crash in between leaves an object with no row,
    which the storage sweep of the janitor removes after its grace period.
    """
    key = blobs.new_key()
    blob = Blob(
        storage_key=key,
        sha256=hashlib.sha256(data).hexdigest(),
        size_bytes=len(data),
        state="pending",
    )
    db.add(blob)
    db.flush()
    on_rollback(db, lambda: svc.store.delete(key))
    svc.store.put_stream(key, [data])
    return documents.StoredBytes(blob.id, key, len(data), blob.sha256)


def save(
    db: Session,
    svc: Services,
    actor: Actor,
    document_id: int,
    content: Content,
    *,
    base_version_id: int | None,
    on_conflict: OnConflict,
) -> SaveOut:
    """Save new content as the current version, checking the base the client edited from.

    The document row is locked for the whole save, so concurrent saves with one base
    serialise: the first wins, the rest see a stale base.
    """
    doc, folder, level = get_document_for(db, actor, document_id, Level.EDIT, for_update=True)
    check_unlocked(db, doc.id, actor.lock_tokens, folder.path)
    stale = base_version_id is not None and base_version_id != doc.current_version_id
    if stale and on_conflict == "reject":
        raise VersionConflict(current_version_id=doc.current_version_id)
    if stale and on_conflict == "copy":
        return _conflict_copy(db, actor, doc, folder, content)
    if stale:
        assert base_version_id is not None
        version = _merge(db, svc, actor, doc, base_version_id, content)
        resolution = "merged"
    else:
        version = documents.add_version(db, actor, doc, use_content(db, content))
        resolution = "saved"
    return SaveOut(
        resolution=resolution,
        document=documents.document_out(db, doc, level),
        version=documents.version_out(version, doc.current_version_id),
    )


def _conflict_copy(
    db: Session, actor: Actor, doc: Document, folder: Folder, content: Content
) -> SaveOut:
    folder_repo.lock(db, folder.id)
    who = actor.user.name if actor.user else "link"
    name = conflict_copy_name(doc.name, who, lambda n: folder_repo.name_taken(db, folder.id, n))
    blob = use_content(db, content)
    copy, version = documents.create_document(db, actor, folder.id, name, doc.mime_type, blob)
    return SaveOut(
        resolution="conflict_copy",
        document=documents.created_out(db, actor, copy),
        version=documents.version_out(version, copy.current_version_id),
    )


def list_versions(
    db: Session, actor: Actor, document_id: int, limit: int, cursor: str | None
) -> tuple[list[VersionOut], str | None]:
    """A page of the document's versions, newest first."""
    doc, _, _ = get_document_for(db, actor, document_id, Level.VIEW)
    stmt = select(DocumentVersion).where(DocumentVersion.document_id == doc.id)
    before = cursor_int(cursor, "n")
    if before is not None:
        stmt = stmt.where(DocumentVersion.version_number < before)
    rows = list(db.scalars(stmt.order_by(DocumentVersion.version_number.desc()).limit(limit + 1)))
    shown, next_cursor = page(rows, limit, lambda v: {"n": v.version_number})
    return [documents.version_out(v, doc.current_version_id) for v in shown], next_cursor


def _version_of(db: Session, doc: Document, version_id: int) -> DocumentVersion:
    version = db.scalar(
        select(DocumentVersion).where(
            DocumentVersion.id == version_id, DocumentVersion.document_id == doc.id
        )
    )
    if version is None:
        raise NotFound()
    return version


def restore(db: Session, actor: Actor, document_id: int, version_id: int) -> SaveOut:
    """A new current version with an old version's content: same blob, no re-upload."""
    doc, folder, level = get_document_for(db, actor, document_id, Level.EDIT, for_update=True)
    check_unlocked(db, doc.id, actor.lock_tokens, folder.path)
    old = _version_of(db, doc, version_id)
    blob = use_content(db, db.get_one(Blob, old.blob_id))
    version = documents.add_version(db, actor, doc, blob, action=Action.RESTORE, restored_from=old)
    return SaveOut(
        resolution="saved",
        document=documents.document_out(db, doc, level),
        version=documents.version_out(version, doc.current_version_id),
    )


def pin(db: Session, actor: Actor, document_id: int, version_id: int, keep: bool) -> VersionOut:
    """Set `keep_forever`: pinned versions are never removed by retention."""
    doc, _, _ = get_document_for(db, actor, document_id, Level.EDIT)
    version = _version_of(db, doc, version_id)
    version.keep_forever = keep
    db.flush()
    return documents.version_out(version, doc.current_version_id)


def delete(db: Session, actor: Actor, document_id: int, version_id: int) -> None:
    """Delete a non-current version (owner only): its quota is released, its blob unreferenced."""
    doc, _, _ = get_document_for(db, actor, document_id, Level.OWNER, for_update=True)
    version = _version_of(db, doc, version_id)
    if version.id == doc.current_version_id:
        raise Conflict("The current version cannot be deleted; restore another one first.")
    user_repo.release(db, doc.owner_id, version.size_bytes)
    blobs.drop_ref(db, version.blob_id)
    record(db, actor, Action.VERSION_DELETE, document_id=doc.id, owner_id=doc.owner_id,
           details={"version_id": version.id, "version_number": version.version_number,
                    "size_bytes": version.size_bytes})  # fmt: skip
    db.delete(version)
    db.flush()
