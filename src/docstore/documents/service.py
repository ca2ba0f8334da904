"""Documents: create from verified bytes, new versions, rename/move, trash, download."""

from __future__ import annotations

import logging
import mimetypes
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import Row, bindparam, select, true
from sqlalchemy import update as sql_update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from docstore import jobs, metrics
from docstore.audit.service import Action, record
from docstore.changes import service as changes
from docstore.context import Actor
from docstore.db import after_commit, utcnow
from docstore.db.fastpath import first_row, insert_returning, inserted
from docstore.documents import blobs
from docstore.documents.dav_state import LockHolder, check_unlocked, live_lock, lock_lateral
from docstore.documents.models import Blob, Document, DocumentVersion
from docstore.documents.schemas import DocumentLockOut, DocumentOut, DownloadOut
from docstore.errors import Forbidden, NotFound, QuotaExceeded, StorageUnavailable
from docstore.folders import repository as folder_repo
from docstore.folders.models import Folder
from docstore.folders.service import ensure_free_name, resolve_id
from docstore.names import clean_name, unique_name
from docstore.search.models import SearchText, index_status
from docstore.security import token_digest
from docstore.services import for_session as services_for
from docstore.sharing import url_grants
from docstore.sharing.permissions import (
    Level,
    creator_level,
    folder_level,
    get_document_for,
    get_folder_for,
    grant_lateral,
    level_for,
    require_live,
)
from docstore.storage.base import BlobStore
from docstore.users import repository as user_repo
from docstore.users import service as users
from docstore.users.models import ApiToken, User
from docstore.versions.schemas import VersionOut

log = logging.getLogger(__name__)


@dataclass
class StoredBytes:
    """Stored bytes behind a pending blob row, with what is proven about them.

    By default the server wrote and hashed them itself. An S3 upload is proven by its
    content hash instead (`content_hash` over `block_size` blocks, checked by S3 part by
    part) and its `sha256` is the client's claim (`sha256_verified=False`) until the
    verification job (documents.tasks) reads the object.
    """

    blob_id: int
    key: str
    size: int
    sha256: str
    sha256_verified: bool = True
    content_hash: str | None = None
    block_size: int | None = None


def guess_mime(name: str, given: str | None = None) -> str:
    """The MIME type given by the client, else guessed from the name."""
    if given and "/" in given and len(given) <= 255:
        return given
    return mimetypes.guess_type(name, strict=False)[0] or "application/octet-stream"


def version_out(version: DocumentVersion | Row[Any], current_version_id: int | None) -> VersionOut:
    """The API view of a version (no storage key)."""
    return VersionOut(
        id=version.id,
        document_id=version.document_id,
        version_number=version.version_number,
        size_bytes=version.size_bytes,
        checksum_sha256=version.checksum_sha256,
        checksum_verified=version.checksum_verified,
        created_by=version.created_by,
        created_at=version.created_at,
        is_current=version.id == current_version_id,
        keep_forever=version.keep_forever,
        is_damaged=version.is_damaged,
    )


def document_out(db: Session, doc: Document, level: Level) -> DocumentOut:
    """The API view of a document, with its current version."""
    current = db.get(DocumentVersion, doc.current_version_id) if doc.current_version_id else None
    return document_out_of(
        doc, version_out(current, doc.current_version_id) if current else None, level
    )


def created_out(db: Session, actor: Actor, doc: Document) -> DocumentOut:
    """The API view of a document the actor has just created, at their level on it."""
    return document_out(db, doc, creator_level(actor, doc.owner_id))


def document_out_of(
    doc: Document | Row[Any], current: VersionOut | None, level: Level
) -> DocumentOut:
    """`DocumentOut` from a document (an instance, or a row of `_DOCUMENT_COLUMNS`)."""
    return DocumentOut(
        id=doc.id,
        name=doc.name,
        owner_id=doc.owner_id,
        parent_folder_id=doc.folder_id,
        mime_type=doc.mime_type,
        size_bytes=current.size_bytes if current else 0,
        current_version=current,
        created_at=doc.created_at,
        updated_at=doc.updated_at,
        is_deleted=doc.is_deleted,
        permission=level.name,
    )


def check_new_document(
    db: Session, actor: Actor, folder_id: int | str | None, name: str, size: int | None
) -> tuple[Folder, str]:
    """Early checks before any byte is sent: permission, name and (if known) quota."""
    folder, name = target_folder(db, actor, folder_id, name)
    ensure_free_name(db, folder.id, name)
    if size is not None and not user_repo.fits(db, folder.owner_id, size):
        raise QuotaExceeded("This file does not fit in the owner's quota.")
    return folder, name


def target_folder(
    db: Session, actor: Actor, folder_id: int | str | None, name: str
) -> tuple[Folder, str]:
    """The folder a new document goes in (EDIT needed) and its cleaned name.

    What a request checks again once the bytes are stored; whether the name is free is
    then `create_document`'s check, made under the folder lock.
    """
    folder, _ = get_folder_for(db, actor, resolve_id(actor, folder_id), Level.EDIT)
    return folder, clean_name(name)


def attach_blob(db: Session, stored: StoredBytes) -> Blob:
    """The blob a new version will point at: an existing copy of the same bytes, or this one.

    Cross-user deduplication happens here, only on a hash proven from the bytes (the
    SHA-256 the server computed itself, or in S3 mode the content hash S3 checked part by
    part), so a client cannot obtain content by claiming its checksum. The duplicate object is
    queued for deletion; the caller learns nothing about who else holds the content.
    """
    target = None
    if stored.sha256_verified:
        target = blobs.find_dedup_target(db, stored.sha256, stored.size)
    elif stored.content_hash is not None and stored.block_size is not None:
        # S3 mode: the SHA-256 is a claim; the content hash S3 checked finds the copy.
        target = blobs.find_content_target(
            db, stored.content_hash, stored.block_size, stored.size, stored.sha256
        )
    if target is not None and target.id != stored.blob_id:
        blobs.retire_duplicates(db, [(stored.blob_id, stored.sha256)])
        blobs.add_ref(db, target.id)
        db.refresh(target)
        after_commit(db, lambda: metrics.DEDUP_SAVED.inc(stored.size))
        return target
    return blobs.activate(
        db,
        stored.blob_id,
        stored.sha256,
        stored.size,
        verified=stored.sha256_verified,
        content_hash=stored.content_hash,
        block_size=stored.block_size,
    )


def attach_new_bytes(db: Session, store: BlobStore, stored: StoredBytes) -> Blob:
    """`attach_blob` for bytes stored with no pending row (`blobs.add_active`; the small
    path, documents.write_group): an existing verified copy, whose new duplicate object
    is deleted once this commits, or a new live blob row for them."""
    target = blobs.find_dedup_target(db, stored.sha256, stored.size)
    if target is not None:
        blobs.add_ref(db, target.id)
        db.expire(target, ["ref_count", "unreferenced_at"])
        key, size = stored.key, stored.size
        after_commit(db, lambda: store.delete(key))
        after_commit(db, lambda: metrics.DEDUP_SAVED.inc(size))
        return target
    return blobs.add_active(db, stored.key, stored.sha256, stored.size)


def create_from_new_bytes(
    db: Session,
    store: BlobStore,
    actor: Actor,
    folder_id: int | str | None,
    name: str,
    mime_type: str | None,
    stored: StoredBytes,
) -> DocumentOut:
    """A new document for bytes stored with no pending row (documents.write_group), in
    the caller's transaction: permission on the folder again, the blob (deduplicated),
    the document and version 1 with quota charge, audit entry and change-feed rows.

    The folder is read once, with its lock (`create_document` takes it anyway), and the
    permission checked on that row: one statement fewer than `target_folder` and then
    the lock. Locks in the order of the other upload paths: the blob, the folder, the
    owner's row."""
    clean = clean_name(name)
    target_id = resolve_id(actor, folder_id)
    blob = attach_new_bytes(db, store, stored)
    folder = folder_repo.lock(db, target_id)
    if folder is None:
        raise NotFound()
    require_live(folder_level(db, actor, folder), Level.EDIT, folder.is_deleted)
    doc, _ = create_document(
        db, actor, folder.id, clean, guess_mime(clean, mime_type), blob, locked=folder
    )
    return created_out(db, actor, doc)


def create_document(
    db: Session,
    actor: Actor,
    folder_id: int,
    name: str,
    mime_type: str,
    blob: Blob,
    *,
    created_by: int | None = None,
    locked: Folder | None = None,
) -> tuple[Document, DocumentVersion]:
    """A new document with version 1 in one transaction: rows, quota charge, audit.
    `locked`: the folder, already locked by the caller (`folder_repo.lock`) in this
    transaction."""
    folder = locked if locked is not None else folder_repo.lock(db, folder_id)
    if folder is None or folder.is_deleted:
        raise NotFound()
    ensure_free_name(db, folder.id, name)
    params = document_params(actor, folder.owner_id, folder.id, name, mime_type, created_by)
    doc: Document = inserted(db, INSERT_DOCUMENT, params)
    version = add_version(db, actor, doc, blob, action=Action.UPLOAD)
    return doc, version


def document_params(
    actor: Actor,
    owner_id: int,
    folder_id: int,
    name: str,
    mime_type: str,
    created_by: int | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """`INSERT_DOCUMENT`'s parameters for a new document."""
    now = now or utcnow()
    return {
        "owner_id": owner_id,
        "folder_id": folder_id,
        "name": name,
        "mime_type": mime_type,
        "created_by": created_by if created_by is not None else actor.user_id,
        "created_at": now,
        "updated_at": now,
    }


# Built once; Core INSERTs returning the whole row (db.inserted).
INSERT_DOCUMENT = insert_returning(
    Document,
    ("owner_id", "folder_id", "name", "mime_type", "created_by", "created_at", "updated_at"),
)
POINT_AT_VERSION = (
    sql_update(Document)
    .where(Document.id == bindparam("document_id"))
    .values(
        last_version_number=bindparam("last_version_number"),
        current_version_id=bindparam("current_version_id"),
        updated_at=bindparam("updated_at"),
    )
)
INSERT_VERSION = insert_returning(
    DocumentVersion,
    (
        "document_id", "version_number", "blob_id", "size_bytes", "checksum_sha256",
        "checksum_verified", "created_by", "created_at", "restored_from_id",
    ),
)  # fmt: skip


def add_version(
    db: Session,
    actor: Actor,
    doc: Document,
    blob: Blob,
    *,
    action: Action = Action.UPLOAD,
    restored_from: DocumentVersion | None = None,
) -> DocumentVersion:
    """Append a version (the caller holds the document's row lock) and charge its owner."""
    user_repo.charge(db, doc.owner_id, blob.size_bytes)
    size = blob.size_bytes
    after_commit(db, lambda: metrics.UPLOADED.inc(size))
    params = version_params(actor, doc.id, doc.last_version_number + 1, blob, utcnow())
    if restored_from is not None:
        params["restored_from_id"] = restored_from.id
    version: DocumentVersion = inserted(db, INSERT_VERSION, params)
    # The document row now, as one Core UPDATE (no unit-of-work flush); the instance is
    # told the values are the row's, so nothing of this is left to flush.
    moved = {
        "last_version_number": version.version_number,
        "current_version_id": version.id,
        "updated_at": version.created_at,
    }
    db.connection().execute(POINT_AT_VERSION, {"document_id": doc.id, **moved})
    for key, value in moved.items():
        set_committed_value(doc, key, value)
    details = version_details(version)
    if restored_from is not None:
        details["restored_from_version"] = restored_from.version_number
    record(db, actor, action, document_id=doc.id, owner_id=doc.owner_id, details=details)
    op = changes.Op.CREATED if version.version_number == 1 else changes.Op.UPDATED
    changes.item_changed(db, actor, changes.document_item(db, doc), op)
    svc = services_for(db)
    if svc is not None:  # the search index reads the new current version's text
        after_commit(db, lambda: jobs.wake(svc, "search.index"))
    return version


class BlobFacts(Protocol):
    """What a version row copies from its blob (a `Blob`, or `NewBlob` in a batch)."""

    id: int
    size_bytes: int
    sha256: str
    verified: bool


@dataclass
class NewBlob:
    """`BlobFacts` known without reading the row back (`recording.create_documents`)."""

    id: int
    size_bytes: int
    sha256: str
    verified: bool


def version_params(
    actor: Actor, document_id: int, number: int, blob: BlobFacts, now: datetime
) -> dict[str, Any]:
    """`INSERT_VERSION`'s parameters for version `number` of a document, on `blob`."""
    return {
        "document_id": document_id,
        "version_number": number,
        "blob_id": blob.id,
        "size_bytes": blob.size_bytes,
        "checksum_sha256": blob.sha256,
        "checksum_verified": blob.verified,
        "created_by": actor.user_id,
        "created_at": now,
        "restored_from_id": None,
    }


def version_details(version: DocumentVersion | Row[Any]) -> dict[str, Any]:
    """The audit entry's details for a new version."""
    return {
        "version_id": version.id,
        "version_number": version.version_number,
        "size_bytes": version.size_bytes,
    }


_VERSION_FIELDS = tuple(f for f in VersionOut.model_fields if f != "is_current")
# What GET /documents/{id} reads, as plain columns: the document, its folder's path and its
# current version. ORM entities for these rows cost more CPU than the rest of the read
# (bench/PROFILE.md, session 5).
_DOCUMENT_COLUMNS = (
    Document.id,
    Document.name,
    Document.owner_id,
    Document.folder_id,
    Document.mime_type,
    Document.current_version_id,
    Document.created_at,
    Document.updated_at,
    Document.is_deleted,
    Folder.path,
    *(getattr(DocumentVersion, f).label(f"v_{f}") for f in _VERSION_FIELDS),
    SearchText.version_id.label("indexed_version_id"),
    SearchText.status.label("index_status"),
)
# Built once. For an actor already known (a link's holder):
_VIEW = (
    select(*_DOCUMENT_COLUMNS)
    .join(Folder, Folder.id == Document.folder_id)
    .outerjoin(DocumentVersion, DocumentVersion.id == Document.current_version_id)
    .outerjoin(SearchText, SearchText.document_id == Document.id)
    .where(Document.id == bindparam("document_id"))
)
# For a request with a token: the token and its user (users.repository.TOKEN_COLUMNS) in
# the same statement, with the document outer-joined so that an unknown document still
# authenticates the caller first. One round trip instead of two.
_VIEW_WITH_TOKEN = (
    select(*user_repo.TOKEN_COLUMNS, *_DOCUMENT_COLUMNS)
    .select_from(ApiToken)
    .join(User, User.id == ApiToken.user_id)
    .outerjoin(Document, Document.id == bindparam("document_id"))
    .outerjoin(Folder, Folder.id == Document.folder_id)
    .outerjoin(DocumentVersion, DocumentVersion.id == Document.current_version_id)
    .outerjoin(SearchText, SearchText.document_id == Document.id)
    .where(ApiToken.token_hash == bindparam("digest"))
)


def get(db: Session, actor: Actor, document_id: int) -> DocumentOut:
    """A document the caller can see; reads by anyone but the owner are audited as VIEW."""
    row = first_row(db, _VIEW, {"document_id": document_id})
    return _view(db, actor, row)


def get_with_token(db: Session, actor: Actor, token: str, document_id: int) -> DocumentOut:
    """`get` for the holder of `token`, authenticated in the same statement (401 as
    `users.service.authenticate`)."""
    params = {"digest": token_digest(token), "document_id": document_id}
    row = first_row(db, _VIEW_WITH_TOKEN, params)
    actor.user, actor.token_id = users.check_token(db, row)
    return _view(db, actor, row)


# The hot read on PostgreSQL, one statement: `_VIEW_WITH_TOKEN` plus the reader's share
# grant (`level_for`'s own query, correlated) and the live WebDAV lock (`live_lock`'s).
_ONE_STATEMENT_TABLES = (ApiToken, User, Document, Folder)
_GRANT = grant_lateral(ApiToken.user_id, Document, Folder, _ONE_STATEMENT_TABLES)
_LOCK = lock_lateral(Document, Folder, _ONE_STATEMENT_TABLES)
_VIEW_IN_ONE_STATEMENT = (
    _VIEW_WITH_TOKEN.add_columns(_GRANT.c.grant_level, _LOCK.c.lock_owner, _LOCK.c.lock_expires_at)
    .outerjoin(_GRANT, true())
    .outerjoin(_LOCK, true())
)


def get_in_one_statement(token: str, document_id: int) -> tuple[Any, dict[str, Any]]:
    """`get_with_token` as one statement and its parameters, for PostgreSQL: the token,
    the document, the reader's grant on it and its lock in one round trip, run by
    `UnitOfWork.read_one_statement` on the event loop; `view_from_statement` checks the
    row. Why: the read was six round trips (BEGIN, token and document, the grant cache in
    Redis, the lock, COMMIT, plus the pool's ping) and a worker-thread hop, and the
    server spent the request mostly waiting (bench/PROFILE.md, "Reads on PostgreSQL in one
    statement")."""
    params = {"digest": token_digest(token), "document_id": document_id, "now": utcnow()}
    return _VIEW_IN_ONE_STATEMENT, params


def view_from_statement(db: Session, actor: Actor, row: Row[Any] | None) -> DocumentOut:
    """`get_with_token`'s checks on a row of `get_in_one_statement` (401, 404, VIEW). `db`
    only collects the deferred VIEW entry and token use; nothing here queries."""
    actor.user, actor.token_id = users.check_token(db, row)
    assert row is not None  # check_token raised otherwise
    if row.id is None:
        raise NotFound()
    granted = Level(row.grant_level or 0)
    level = level_for(db, actor, row.owner_id, row.path, row.id, granted=granted)
    holder = None
    if row.lock_owner is not None:
        holder = LockHolder(row.lock_owner, row.lock_expires_at)
    return _answer(db, actor, row, level, lambda: holder)


def _view(db: Session, actor: Actor, row: Row[Any] | None) -> DocumentOut:
    """The checks of `get_document_for(..., Level.VIEW)` on one row of `_DOCUMENT_COLUMNS`,
    the VIEW entry, and the answer."""
    if row is None or row.id is None:
        raise NotFound()
    level = level_for(db, actor, row.owner_id, row.path, row.id, created_at=row.created_at)
    return _answer(db, actor, row, level, lambda: live_lock(db, row.id, row.path))


def _answer(
    db: Session,
    actor: Actor,
    row: Row[Any],
    level: Level,
    lock: Callable[[], LockHolder | None],
) -> DocumentOut:
    """A read's answer once its level is known: 404 unless VIEW on a live document, the
    VIEW entry, the document with its current version, index state and WebDAV lock."""
    require_live(level, Level.VIEW, row.is_deleted)
    if level != Level.OWNER:
        record(db, actor, Action.VIEW, document_id=row.id, owner_id=row.owner_id)
    current = None
    if row.current_version_id is not None:
        m = row._mapping
        current = VersionOut(**{f: m[f"v_{f}"] for f in _VERSION_FIELDS}, is_current=True)
    out = document_out_of(row, current, level)
    holder = lock()
    if holder is not None:
        out.lock = DocumentLockOut(owner=holder.owner, expires_at=holder.expires_at)
    out.index_status = index_status(
        row.current_version_id, row.indexed_version_id, row.index_status
    ).value
    return out


def update(
    db: Session,
    actor: Actor,
    document_id: int,
    *,
    name: str | None,
    move: bool,
    parent_folder_id: int | str | None,
) -> DocumentOut:
    """Rename and/or move a document (EDIT on it and on the target folder)."""
    doc, folder, level = get_document_for(db, actor, document_id, Level.EDIT, for_update=True)
    check_unlocked(db, doc.id, actor.lock_tokens, folder.path)
    new_name = clean_name(name) if name is not None else doc.name
    now = utcnow()
    if move:
        target_id = resolve_id(actor, parent_folder_id)
        if target_id != doc.folder_id:
            target, _ = get_folder_for(db, actor, target_id, Level.EDIT)
            if target.owner_id != doc.owner_id:
                raise Forbidden("Items cannot be moved into another owner's folder.")
            folder_repo.lock(db, target.id)
            ensure_free_name(db, target.id, new_name, except_document=doc.id)
            old = doc.folder_id
            seen = changes.Visibility.of(db, changes.document_item(db, doc, folder.path))
            doc.folder_id = target.id
            doc.updated_at = now
            seen.diff(db, actor, changes.document_item(db, doc, target.path), changes.Op.MOVED)
            record(
                db,
                actor,
                Action.MOVE,
                document_id=doc.id,
                owner_id=doc.owner_id,
                details={"from_folder_id": old, "to_folder_id": target.id},
            )
    if new_name != doc.name:
        folder_repo.lock(db, doc.folder_id)
        ensure_free_name(db, doc.folder_id, new_name, except_document=doc.id)
        record(
            db,
            actor,
            Action.RENAME,
            document_id=doc.id,
            owner_id=doc.owner_id,
            details={"old_name": doc.name, "new_name": new_name},
        )
        doc.name = new_name
        doc.updated_at = now
        changes.item_changed(db, actor, changes.document_item(db, doc), changes.Op.UPDATED)
    db.flush()
    return document_out(db, doc, level)


def delete(db: Session, actor: Actor, document_id: int) -> None:
    """Move a document to the trash (owner only)."""
    doc, folder, _ = get_document_for(db, actor, document_id, Level.OWNER, for_update=True)
    check_unlocked(db, doc.id, actor.lock_tokens, folder.path)
    changes.item_changed(db, actor, changes.document_item(db, doc, folder.path), changes.Op.DELETED)
    doc.is_deleted = True
    doc.deleted_at = utcnow()
    doc.deleted_by = actor.user_id
    doc.trash_root = True
    db.flush()
    record(
        db,
        actor,
        Action.DELETE,
        document_id=doc.id,
        owner_id=doc.owner_id,
        details={"name": doc.name},
    )


def restore(db: Session, actor: Actor, document_id: int) -> DocumentOut:
    """Bring a document back from the trash: where it was, or the root; unique name."""
    doc, folder, level = get_document_for(
        db, actor, document_id, Level.OWNER, for_update=True, include_deleted=True
    )
    if not doc.is_deleted or not doc.trash_root:
        raise NotFound("This document is not in the trash.")
    target = folder
    if folder.is_deleted:
        owner = db.get_one(User, doc.owner_id)
        assert owner.root_folder_id is not None
        target = db.get_one(Folder, owner.root_folder_id)
    folder_repo.lock(db, target.id)
    doc.name = unique_name(doc.name, lambda n: folder_repo.name_taken(db, target.id, n))
    doc.folder_id = target.id
    doc.is_deleted = False
    doc.deleted_at = None
    doc.deleted_by = None
    doc.trash_root = False
    doc.updated_at = utcnow()
    db.flush()
    changes.item_changed(
        db, actor, changes.document_item(db, doc, target.path), changes.Op.RESTORED
    )
    record(
        db,
        actor,
        Action.RESTORE,
        document_id=doc.id,
        owner_id=doc.owner_id,
        details={"name": doc.name, "to_folder_id": target.id},
    )
    return document_out(db, doc, level)


def download(
    db: Session,
    actor: Actor,
    store: BlobStore,
    document_id: int,
    version_id: int | None,
    ttl_seconds: int,
) -> DownloadOut:
    """A short-lived signed URL for the current or a given version; audited as DOWNLOAD."""
    doc, _, _ = get_document_for(db, actor, document_id, Level.VIEW)
    vid = version_id if version_id is not None else doc.current_version_id
    version = db.scalar(
        select(DocumentVersion).where(
            DocumentVersion.id == vid, DocumentVersion.document_id == doc.id
        )
    )
    if version is None:
        raise NotFound()
    blob = db.get_one(Blob, version.blob_id)
    if actor.link is not None and actor.link.expires_at is not None:
        # A URL handed out through a link never outlives the link.
        remaining = int((actor.link.expires_at - utcnow()).total_seconds())
        ttl_seconds = max(1, min(ttl_seconds, remaining))
    # Ask storage before handing out a URL: signing alone needs no round trip, so an
    # outage (or a lost object) would otherwise surface as a dead link in the client.
    # One HEAD (a stat on local disk); unreachable storage raises StorageError -> 503.
    if store.head(blob.storage_key) is None:
        log.error("version %s: its object is missing from storage (run fsck)", version.id)
        raise StorageUnavailable("The stored bytes of this version cannot be read right now.")
    # A URL handed out through a share or link names it, for the store to check again.
    grant = url_grants.grant_for(actor, doc.id, doc.owner_id)
    url = store.sign_download(blob.storage_key, ttl_seconds, doc.name, doc.mime_type, grant)
    record(
        db,
        actor,
        Action.DOWNLOAD,
        document_id=doc.id,
        owner_id=doc.owner_id,
        details={"version_id": version.id, "version_number": version.version_number},
    )
    return DownloadOut(
        url=url,
        expires_at=utcnow() + timedelta(seconds=ttl_seconds),
        version_id=version.id,
        version_number=version.version_number,
        size_bytes=version.size_bytes,
        checksum_sha256=version.checksum_sha256,
    )
