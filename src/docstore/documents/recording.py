"""Many new documents at once: the batch upload's recording (documents.batch).

Each kind of row is one multi-row statement for the whole request, whatever the number of
files, and the change feed's audience is computed once per folder; the rows are the ones
`service.create_document` and `service.attach_blob` write for one file (the row builders
are theirs).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from docstore import jobs, metrics
from docstore.audit.service import Action, entry, insert_rows
from docstore.changes import service as changes
from docstore.context import Actor
from docstore.db import after_commit, utcnow
from docstore.documents import blobs, write_group
from docstore.documents.models import Blob
from docstore.documents.schemas import DocumentOut
from docstore.documents.service import (
    INSERT_DOCUMENT,
    INSERT_VERSION,
    POINT_AT_VERSION,
    BlobFacts,
    NewBlob,
    StoredBytes,
    attach_blob,
    document_out_of,
    document_params,
    version_details,
    version_out,
    version_params,
)
from docstore.errors import NotFound, QuotaExceeded
from docstore.folders import repository as folder_repo
from docstore.folders import service as folder_service
from docstore.services import Services
from docstore.services import for_session as services_for
from docstore.sharing.permissions import creator_level
from docstore.users import repository as user_repo

log = logging.getLogger(__name__)


def attach_blobs(
    db: Session, stored: list[StoredBytes], targets: dict[tuple[str, int], Blob]
) -> list[BlobFacts]:
    """`attach_blob` for many files at once, in three statements whatever their number: the
    blob each new version points at, in order.

    The same rules: bytes the server hashed go onto an existing verified copy (`targets`,
    from `blobs.find_dedup_targets`, locked by the caller) or, the first time the batch
    holds them, their own blob becomes live and the batch's later copies point at it;
    every duplicate's pending row is retired (its object deleted after the commit). S3
    claims go through `attach_blob` one by one (the batch upload never sends them)."""
    out: list[BlobFacts] = []
    first: dict[tuple[str, int], dict[str, Any]] = {}  # activation rows, by content
    refs: dict[int, int] = {}
    duplicates: list[tuple[int, str]] = []
    saved = 0
    for s in stored:
        if not s.sha256_verified:
            out.append(attach_blob(db, s))
            continue
        key = (s.sha256, s.size)
        target = targets.get(key)
        own = first.get(key)
        if target is not None:
            refs[target.id] = refs.get(target.id, 0) + 1
            out.append(target)
        elif own is not None:
            own["ref_count"] += 1
            out.append(NewBlob(own["blob_id"], s.size, s.sha256, True))
        else:
            first[key] = {
                "blob_id": s.blob_id,
                "sha256": s.sha256,
                "size_bytes": s.size,
                "verified": True,
                "content_hash": s.content_hash,
                "block_size": s.block_size,
                "ref_count": 1,
            }
            out.append(NewBlob(s.blob_id, s.size, s.sha256, True))
            continue
        if s.blob_id:  # bytes with a pending row; without one, only the caller's object
            duplicates.append((s.blob_id, s.sha256))
        saved += s.size
    blobs.activate_many(db, list(first.values()))
    blobs.add_refs(db, refs)
    blobs.retire_duplicates(db, duplicates)
    if saved:
        after_commit(db, lambda: metrics.DEDUP_SAVED.inc(saved))
    return out


@dataclass
class NewDocument:
    """A file for `create_documents`: its folder (checked, locked) and free name, its bytes."""

    folder_id: int
    folder_path: str
    name: str
    mime_type: str
    stored: StoredBytes


def create_documents(
    db: Session,
    actor: Actor,
    owner_id: int,
    new: list[NewDocument],
    targets: dict[tuple[str, int], Blob],
) -> list[tuple[DocumentOut, int]]:
    """Many new documents, each with version 1, in the caller's transaction and in a fixed
    number of statements whatever their number: the batch upload's recording
    (documents.batch). Each document's view, and the id of the blob its version points at.

    Why set-based: recorded one by one (`create_document`, each file in its own savepoint)
    a 4 KiB file of a batch cost 2.7 ms of CPU, nearly all of it statements per file (yappi,
    issue 27): the change-feed audience, dedup and activation, the savepoint, the document,
    version, audit and quota rows. Here each kind of row is one multi-row statement and the
    audience is computed once per folder; the rows are the ones `create_document` writes.

    The caller has done per file what `create_document` checks: the folders are locked and
    the names free (`folders.repository.children_named`), the owner charged for them
    (`users.repository.room_for_update`, `charge`), and the dedup `targets` locked first
    (`blobs.find_dedup_targets`), in the lock order of the other upload paths.
    """
    if not new:
        return []
    now = utcnow()
    attached = attach_blobs(db, [n.stored for n in new], targets)
    conn = db.connection()
    rows = [
        document_params(actor, owner_id, n.folder_id, n.name, n.mime_type, now=now) for n in new
    ]
    # Matched back by place, not by position: (folder, live name) is unique.
    by_place = {(d.folder_id, d.name): d for d in conn.execute(INSERT_DOCUMENT, rows)}
    docs = [by_place[(n.folder_id, n.name)] for n in new]
    rows = [version_params(actor, d.id, 1, b, now) for d, b in zip(docs, attached, strict=True)]
    by_document = {v.document_id: v for v in conn.execute(INSERT_VERSION, rows)}
    versions = [by_document[d.id] for d in docs]
    moved = [
        {"document_id": v.document_id, "last_version_number": 1, "current_version_id": v.id}
        for v in versions
    ]
    conn.execute(POINT_AT_VERSION, [{**m, "updated_at": now} for m in moved])
    entries = [
        entry(actor, Action.UPLOAD, document_id=v.document_id, owner_id=owner_id,
              details=version_details(v))
        for v in versions
    ]  # fmt: skip
    insert_rows(db, entries)
    items = [
        changes.Item("document", d.id, owner_id, n.folder_path)
        for d, n in zip(docs, new, strict=True)
    ]
    changes.documents_created(db, actor, items)
    total = sum(v.size_bytes for v in versions)
    after_commit(db, lambda: metrics.UPLOADED.inc(total))
    svc = services_for(db)
    if svc is not None:  # the search index reads the new versions' text
        after_commit(db, lambda: jobs.wake(svc, "search.index"))
    level = creator_level(actor, owner_id)
    return [
        (document_out_of(d, version_out(v, v.id), level), b.id)
        for d, v, b in zip(docs, versions, attached, strict=True)
    ]


@dataclass
class NewFile:
    """A new file for `record_new_files`: its checked folder and clean name, and its bytes,
    stored by the write group with no blob row yet."""

    folder_id: int
    name: str
    mime_type: str
    stored: StoredBytes


def record_new_files(
    db: Session, svc: Services, actor: Actor, owner_id: int, files: list[NewFile]
) -> list[tuple[DocumentOut, int] | Exception]:
    """The documents of a write group's new small files (WebDAV PUTs of one caller into
    one owner's folders), set-based: per file, its document and the id of its version's
    blob, or its error; a file that fails leaves no row. A file whose place an earlier file
    of the list takes answers `write_group.RunAlone` (alone, after these, it becomes that
    document's next version, as it would have one request at a time).

    The checks `create_document` makes for each file, for all at once and in its order of
    locks: the dedup targets, the folders (gone: 404; a live name there: 409), the owner's
    row (files that no longer fit fail alone, 507, in order)."""
    out: list[tuple[DocumentOut, int] | Exception | None] = [None] * len(files)
    verified = {(f.stored.sha256, f.stored.size) for f in files}
    targets = blobs.find_dedup_targets(db, verified)
    places: dict[int, set[str]] = {}
    for f in files:
        places.setdefault(f.folder_id, set()).add(f.name)
    paths: dict[int, str] = {}
    taken: dict[int, set[str]] = {}
    for folder_id in sorted(places):
        folder = folder_repo.lock(db, folder_id)
        if folder is None or folder.is_deleted:
            continue
        paths[folder_id] = folder.path
        found, documents = folder_repo.children_named(db, folder_id, places[folder_id])
        taken[folder_id] = set(found) | documents
    room = user_repo.room_for_update(db, owner_id)
    charged = 0
    claimed: set[tuple[int, str]] = set()
    kept: list[int] = []
    for i, f in enumerate(files):
        if f.folder_id not in paths:
            out[i] = NotFound()
        elif (f.folder_id, f.name) in claimed:
            out[i] = write_group.RunAlone()
        elif f.name in taken[f.folder_id]:
            out[i] = folder_service.name_conflict(f.name)
        elif f.stored.size and f.stored.size > room:  # as `charge`: an empty file fits
            out[i] = QuotaExceeded(user_repo.OVER_QUOTA)
        else:
            claimed.add((f.folder_id, f.name))
            room -= f.stored.size
            charged += f.stored.size
            kept.append(i)
    if kept:
        user_repo.charge(db, owner_id, charged)
        # A row only for the first copy of content no blob holds yet: the others' objects
        # are deleted once this commits (`attach_new_bytes` does the same for one file).
        firsts: dict[tuple[str, int], int] = {}
        for i in kept:
            content = (files[i].stored.sha256, files[i].stored.size)
            if content not in targets:
                firsts.setdefault(content, i)
        pending = [(files[i].stored.key, files[i].stored.size) for i in firsts.values()]
        ids = blobs.add_pending_many(db, pending) if pending else {}
        new = []
        for i in kept:
            f = files[i]
            f.stored.blob_id = ids.get(f.stored.key, 0)
            new.append(NewDocument(f.folder_id, paths[f.folder_id], f.name, f.mime_type, f.stored))
        created = create_documents(db, actor, owner_id, new, targets)
        unused = []
        for i, (document, blob_id) in zip(kept, created, strict=True):
            out[i] = (document, blob_id)
            if blob_id != files[i].stored.blob_id:
                unused.append(files[i].stored.key)
        if unused:
            after_commit(db, lambda: _delete_objects(svc, unused))
    return [o if o is not None else NotFound() for o in out]


def _delete_objects(svc: Services, keys: list[str]) -> None:
    """Objects no row names (best effort: the storage sweep deletes what this misses)."""
    for key in keys:
        try:
            svc.store.delete(key)
        except Exception:
            log.warning("an unused object could not be deleted; the storage sweep will")
