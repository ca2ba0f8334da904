"""Multipart uploads straight to storage: initiate, complete (verify, deduplicate, charge), discard.

The client sends the bytes to storage itself through signed part URLs (S3's presigned
UploadPart, or the local store's HMAC-signed URLs); the server only signs, checks and records.

Completing runs in phases, each its own short transaction, because storage work (joining the
parts, hashing the object) must happen between database writes and must never hold the
database while it runs (on SQLite a transaction holds the write lock):

  A. lock the session; pending -> completing and a `pending` blob row for the object's key,
     committed BEFORE storage is asked to join the parts. Whatever happens next, that row
     is the trace from which the object is found and deleted (no object is ever orphaned).
  B. no transaction: join the parts and prove what was stored (`_join_and_verify`). With
     declared part checksums, storage checked each part against its signed SHA-256, which
     proves the content hash (docstore.hashing) without reading a byte back; the local
     store also hashes the file while joining. Without them the object is read back once
     and hashed (`_verify`). Anything proven that differs from what was declared deletes
     the object, aborts the session and answers 422. In S3 mode with part checksums the
     plain SHA-256 stays the client's claim (`checksum_verified: false`) until the
     rate-limited job verifies it (uploads.verification).
  C. lock the session again; attach the verified bytes (server-side dedup), create the
     document or the version through `versions.service.save`, charge the owner with the
     conditional UPDATE, mark the session completed. One transaction: all or nothing.

Initiate reserves `size_bytes` of the owner's quota (`users.reserved_bytes`, a conditional
UPDATE like the charge) and caps the caller's open sessions (`max_open_uploads`, 429).
Every end of a session gives the reservation back in the transaction that ends it: phase C
(where it turns into the charge), discard, a checksum mismatch, a refused charge, expiry.

Phase C refused with 507 (the quota shrank, or a merge result outgrew the reservation) ends
the session and deletes the joined object at once, like a checksum mismatch. Any other
failure of phase C (a 409, a failed commit) leaves the session `completing` with its
object: completing again retries (B is idempotent: a joined upload is found by its object),
DELETE discards it, and the expiry job deletes it once the session expires.
The row lock and the state check in C make completing twice return the same document and
charge once, however the two calls interleave.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from docstore.context import Actor
from docstore.db import after_commit, utcnow
from docstore.documents import blobs
from docstore.documents import service as documents
from docstore.documents.models import Blob, Document, DocumentVersion
from docstore.errors import (
    ChecksumMismatch,
    Conflict,
    NotFound,
    QuotaExceeded,
    TooLarge,
    TooManyUploads,
    ValidationFailed,
)
from docstore.folders import repository as folder_repo
from docstore.hashing import BlockHasher, b64_digest, content_hash_of_digests
from docstore.services import Services
from docstore.sharing.permissions import Level, get_document_for
from docstore.storage.base import (
    MAX_PART_NUMBER,
    MAX_PART_SIZE,
    MIN_PART_SIZE,
    PartInfo,
    StorageError,
    normalize_etag,
)
from docstore.uploads import repository
from docstore.uploads.models import UploadSession
from docstore.uploads.schemas import (
    CompletedPart,
    PartRequest,
    UploadComplete,
    UploadCreate,
    UploadOut,
    UploadResult,
)
from docstore.users import repository as user_repo
from docstore.versions import service as versions
from docstore.versions.schemas import OnConflict, Resolution

log = logging.getLogger(__name__)

MiB = 1024 * 1024
READ_BLOCK = 8 * MiB


def plan_parts(size: int, preferred: int) -> tuple[int, int]:
    """(part size, part count): `preferred`, grown in whole MiB so no upload needs >10,000 parts.

    Every part but the last is then at least 5 MiB, as S3 requires, and at most 5 GiB.
    """
    part_size = max(preferred, MIN_PART_SIZE, -(-size // MAX_PART_NUMBER))
    part_size = min(-(-part_size // MiB) * MiB, MAX_PART_SIZE)
    part_count = max(1, -(-size // part_size))
    if part_count > MAX_PART_NUMBER:  # only past ABSURD_SIZE, which validation refuses
        raise ValidationFailed("The file is too large for a multipart upload.")
    return part_size, part_count


@dataclass(frozen=True)
class _Target:
    """Where a completed upload goes and who pays for it."""

    owner_id: int
    folder_id: int | None
    document_id: int | None
    filename: str
    mime_type: str | None


def _target(db: Session, actor: Actor, body: UploadCreate) -> _Target:
    """Permission, name and target checks, all before anything is signed."""
    if body.document_id is not None:
        if body.folder_id is not None:
            raise ValidationFailed("Send folder_id for a new document or document_id, not both.")
        doc, _, _ = get_document_for(db, actor, body.document_id, Level.EDIT)
        if body.base_version_id is not None:
            base = db.get(DocumentVersion, body.base_version_id)
            if base is None or base.document_id != doc.id:
                raise ValidationFailed("base_version_id is not a version of this document.")
        return _Target(doc.owner_id, None, doc.id, doc.name, doc.mime_type)
    if body.base_version_id is not None:
        raise ValidationFailed("base_version_id needs document_id.")
    folder, name = documents.check_new_document(db, actor, body.folder_id, body.filename, None)
    return _Target(
        folder.owner_id, folder.id, None, name, documents.guess_mime(name, body.mime_type)
    )


def initiate(svc: Services, actor: Actor, body: UploadCreate) -> UploadOut:
    """Check everything, then start a multipart upload and sign one URL per part.

    Sizes are validated (schema: negative or absurd is 422; here: over max_file_bytes is
    413), the caller's open sessions are capped (429) and the size is reserved against the
    owner's quota (507) before any URL is signed.
    """
    settings = svc.settings
    if body.size_bytes > settings.max_file_bytes:
        raise TooLarge(f"Files may be at most {settings.max_file_bytes} bytes.")
    checksums = body.part_checksums_sha256
    if body.part_size is not None and checksums is not None:
        # The client hashed each part at its own part size (checked against the count by
        # the schema); that size is the content hash's block size.
        part_size, part_count = body.part_size, len(checksums)
        content_hash = content_hash_of_digests(b64_digest(c) for c in checksums)
    else:
        part_size, part_count = plan_parts(body.size_bytes, settings.upload_part_size)
        content_hash = None
    ttl = min(settings.upload_session_ttl_seconds, svc.store.max_presign_seconds)
    expires_at = utcnow() + timedelta(seconds=ttl)
    with svc.database.transaction() as db:
        target = _target(db, actor, body)
        assert actor.user_id is not None
        # Both accounts locked (in id order) before counting: concurrent initiations by one
        # user serialise here, so the cap holds exactly (SQLite's write lock does the same).
        user_repo.lock_users(db, {actor.user_id, target.owner_id})
        if repository.open_count(db, actor.user_id, utcnow()) >= settings.max_open_uploads:
            raise TooManyUploads(
                f"At most {settings.max_open_uploads} uploads may be open at once; "
                "complete or discard some first."
            )
        user_repo.reserve(db, target.owner_id, body.size_bytes)
        # Deduplication without the "Dropship" hole. The seed skipped the upload whenever
        # ANY stored version had the declared checksum, so knowing a file's SHA-256 (from a
        # leak, a public hash list, a guess among few candidates) was enough to obtain the
        # file: claim the hash, skip the upload, download "your" copy. Here the upload is
        # skipped only when the caller can ALREADY read a version with these bytes, so it
        # hands them nothing new. Everyone else gets skip_upload=false and the same
        # response whether or not someone holds the content (no existence oracle); their
        # bytes are proven (hashed by the server, or their content hash checked by S3 part
        # by part) and only then, in complete, deduplicated on that proven hash
        # (documents.service.attach_blob). A client that lies about the checksum gets 422
        # or an unverified version of its own bytes, never a reference to someone else's
        # object.
        blob_id = repository.readable_blob_id(db, actor, body.checksum_sha256, body.size_bytes)
        skip = blob_id is not None
        session = UploadSession(
            id=secrets.token_urlsafe(24),
            user_id=actor.user_id,
            owner_id=target.owner_id,
            folder_id=target.folder_id,
            document_id=target.document_id,
            base_version_id=body.base_version_id,
            filename=target.filename,
            mime_type=target.mime_type,
            size_bytes=body.size_bytes,
            reserved_bytes=body.size_bytes,
            checksum_sha256=body.checksum_sha256,
            content_hash=None if skip else content_hash,
            part_size=0 if skip else part_size,
            part_count=0 if skip else part_count,
            # The key is recorded (committed) before the storage upload exists, so the
            # expiry job can always find and abort what a crash left behind.
            storage_key=None if skip else blobs.new_key(),
            skip_upload=skip,
            blob_id=blob_id,
            state="pending",
            created_at=utcnow(),
            expires_at=expires_at,
        )
        db.add(session)
        db.flush()
        upload_id, key = session.id, session.storage_key
    if key is None:
        return UploadOut(
            upload_id=upload_id,
            skip_upload=True,
            part_size=0,
            part_count=0,
            parts=[],
            expires_at=expires_at,
        )
    storage_id = None
    try:
        # With declared part checksums, storage demands one with every part and each is
        # a signed header of its part's URL: storage itself refuses bytes that differ.
        storage_id = svc.store.create_multipart(
            key,
            target.mime_type,
            checksum_sha256=checksums is not None,
            part_size=part_size,
            size=body.size_bytes,
        )
        parts = [
            PartRequest(
                part_number=n,
                url=signed.url,
                method=signed.method,
                headers=signed.headers,
            )
            for n, signed in (
                (n, svc.store.sign_part(key, storage_id, n, ttl, _part_checksum(checksums, n)))
                for n in range(1, part_count + 1)
            )
        ]
        with svc.database.transaction() as db:
            db.execute(
                update(UploadSession)
                .where(UploadSession.id == upload_id)
                .values(storage_upload_id=storage_id)
            )
    except BaseException:
        _abandon(svc, upload_id, key, storage_id)
        raise
    return UploadOut(
        upload_id=upload_id,
        skip_upload=False,
        part_size=part_size,
        part_count=part_count,
        parts=parts,
        expires_at=expires_at,
    )


def _part_checksum(checksums: list[str] | None, part_number: int) -> str | None:
    return None if checksums is None else checksums[part_number - 1]


def _abandon(svc: Services, upload_id: str, key: str, storage_id: str | None) -> None:
    """Best effort after a failed initiate; the expiry job covers whatever this misses."""
    try:
        if storage_id is not None:
            svc.store.abort_multipart(key, storage_id)
        with svc.database.transaction() as db:
            session = repository.lock(db, upload_id)
            if session is not None and session.state == "pending":
                end(db, session, "aborted")
    except Exception:
        log.warning("upload %s: could not clean up after a failed initiate", upload_id)


@dataclass(frozen=True)
class _Snapshot:
    """What phase B needs of a session, read under its lock in phase A."""

    upload_id: str
    key: str
    storage_id: str
    size: int
    part_size: int
    sha256: str
    blob_id: int
    content_hash: str | None  # from the part checksums signed into the part URLs


@dataclass(frozen=True)
class _Proof:
    """What phase B proved about the stored bytes (None: not proven)."""

    sha256: str | None  # the server hashed the object (local store, or a read-back)
    content_hash: str | None  # over blocks of the part size, proven by storage or the server


def complete(svc: Services, actor: Actor, upload_id: str, body: UploadComplete) -> UploadResult:
    """Finish an upload: phases A, B, C of the module docstring."""
    with svc.database.transaction() as db:  # phase A
        session = repository.lock_own(db, actor, upload_id)
        if session.state == "completed":
            return _result(db, actor, session)
        _check_live(session)
        snapshot = None if session.skip_upload else _begin_completing(db, session)
    proof = None
    if snapshot is not None:  # phase B
        proof = _join_and_verify(svc, snapshot, body.parts)
        if _mismatch(snapshot, proof):
            _discard_mismatch(svc, snapshot)
            raise ChecksumMismatch(
                "The uploaded bytes do not hash to checksum_sha256; nothing was stored."
            )
    try:
        with svc.database.transaction() as db:  # phase C
            session = repository.lock_own(db, actor, upload_id)
            if session.state == "completed":  # a concurrent complete won
                return _result(db, actor, session)
            _check_live(session)
            if not session.skip_upload and session.state != "completing":
                raise NotFound("No such upload.")
            return _finish(db, svc, actor, session, body.on_conflict, proof)
    except QuotaExceeded:
        _discard_refused(svc, upload_id)
        raise


def _discard_refused(svc: Services, upload_id: str) -> None:
    """Phase C was refused for quota: end the session and delete its object now.

    Best effort (the 507 is the answer either way): whatever this misses, the expiry job
    ends and deletes when the session expires.
    """
    try:
        with svc.database.transaction() as db:
            session = repository.lock(db, upload_id)
            if session is not None and session.state in repository.LIVE:
                release(db, svc, session, "aborted")
    except Exception:
        log.warning("upload %s: could not discard after a refused complete", upload_id)


def _check_live(session: UploadSession) -> None:
    if session.state not in repository.LIVE:
        raise NotFound("This upload was discarded or has expired.")
    if session.state == "pending" and session.expires_at <= utcnow():
        raise NotFound("This upload has expired.")


def _begin_completing(db: Session, session: UploadSession) -> _Snapshot:
    """pending -> completing, with the pending blob row committed before storage is asked."""
    if session.storage_key is None or session.storage_upload_id is None:
        raise NotFound("This upload was never started in storage.")
    if session.state == "pending":
        blob = Blob(
            storage_key=session.storage_key,
            sha256="",
            size_bytes=session.size_bytes,
            state="pending",
            created_at=utcnow(),
        )
        db.add(blob)
        db.flush()
        session.blob_id = blob.id
        session.state = "completing"
        db.flush()
    assert session.blob_id is not None
    return _Snapshot(
        upload_id=session.id,
        key=session.storage_key,
        storage_id=session.storage_upload_id,
        size=session.size_bytes,
        part_size=session.part_size,
        sha256=session.checksum_sha256,
        blob_id=session.blob_id,
        content_hash=session.content_hash,
    )


def _choose_parts(
    listed: list[PartInfo], sent: list[CompletedPart] | None, size: int, part_size: int
) -> list[PartInfo]:
    """The parts to join: the client's list checked against storage's, or storage's own.

    Refusals are 422 and leave the upload as it is, so the client can fix it and retry.
    """
    if sent is None:
        chosen = listed
    else:
        stored = {p.part_number: p for p in listed}
        chosen = []
        for part in sorted(sent, key=lambda p: p.part_number):
            found = stored.get(part.part_number)
            if found is None:
                raise ValidationFailed(f"Part {part.part_number} was not uploaded.")
            if normalize_etag(part.etag) != found.etag:
                raise ValidationFailed(f"Part {part.part_number} does not match its ETag.")
            chosen.append(found)
    if not chosen:
        raise ValidationFailed("No part has been uploaded.")
    for number, info in enumerate(chosen, start=1):
        if info.part_number != number:
            raise ValidationFailed(f"Part {number} was not uploaded.")
        if info is not chosen[-1] and info.size != part_size:
            # The size the upload was planned with (the response to POST /uploads).
            raise ValidationFailed(
                f"Part {info.part_number} has {info.size} bytes; every part but the last "
                f"must have part_size ({part_size}) bytes."
            )
    total = sum(p.size for p in chosen)
    if total != size:
        raise ValidationFailed(f"The parts hold {total} bytes; the upload declared {size}.")
    return chosen


def _mismatch(snap: _Snapshot, proof: _Proof) -> bool:
    """Whether what phase B proved contradicts what the client declared."""
    if proof.sha256 is not None and proof.sha256 != snap.sha256:
        return True
    return snap.content_hash is not None and proof.content_hash != snap.content_hash


def _join_and_verify(svc: Services, snap: _Snapshot, sent: list[CompletedPart] | None) -> _Proof:
    """Join the parts in storage and prove what the stored object is (`_Proof`).

    With declared part checksums this is `_proof_from_parts`: storage checked every part's
    SHA-256 and the server reads nothing back. Without them (older clients) the object is
    read back once and hashed (`_verify`), unless the store hashed it while joining.
    """
    store = svc.store
    try:
        listed = store.list_parts(snap.key, snap.storage_id)
    except StorageError:
        # No such upload: an earlier attempt joined it (then the object exists), or it is
        # gone. An outage fails `head` as well and surfaces as 503. Rare (a complete that
        # failed after the join): the object is read back whatever the client declared.
        if store.head(snap.key) is None:
            raise NotFound("The upload's parts are gone; start the upload again.") from None
        return _verify(svc, snap)
    chosen = _choose_parts(listed, sent, snap.size, snap.part_size)
    proven = _proof_from_parts(snap, chosen)
    try:
        digest = store.complete_multipart(snap.key, snap.storage_id, chosen, listed=True)
    except StorageError:
        if store.head(snap.key) is None:  # not joined by a concurrent attempt either
            raise
        return _verify(svc, snap)
    if digest is not None:  # the local store hashed the file while joining
        return _Proof(digest, proven)
    return _Proof(None, proven) if proven is not None else _verify(svc, snap)


def _proof_from_parts(snap: _Snapshot, chosen: list[PartInfo]) -> str | None:
    """The content hash storage proved for these parts, or None without declared checksums.

    Every part URL was signed with its declared SHA-256 (`x-amz-checksum-sha256`) and the
    upload was created demanding one per part, so storage accepted no part whose bytes
    differ from it: the declared content hash is the stored bytes'. S3 also reports the
    checksum it checked for each part (ListParts); those are used when present, so a part
    that somehow carries another checksum shows as a mismatch rather than being trusted.
    The local store enforces the signed checksum the same way but does not list it.
    """
    if snap.content_hash is None:
        return None
    if all(p.checksum_sha256 for p in chosen):
        return content_hash_of_digests(b64_digest(p.checksum_sha256 or "") for p in chosen)
    if any(p.checksum_sha256 for p in chosen):
        return ""  # some parts without a checksum: not what was signed, a mismatch
    return snap.content_hash


def _verify(svc: Services, snap: _Snapshot) -> _Proof:
    """Read the stored object once and hash it: the plain SHA-256 and the content hash.

    The path of clients that declare no part checksums (and of a complete retried after
    the join). It costs one sequential GET of the object and a hashing pass on the server
    (bench: 0.83 server CPU-s/GiB in S3 mode); clients that send part checksums let S3
    prove the content hash instead (`_proof_from_parts`) and their plain SHA-256 is
    verified later by the rate-limited job (documents.tasks), off the request path.
    """
    hasher = BlockHasher(snap.part_size or READ_BLOCK)
    try:
        stream = svc.store.open(snap.key)
    except KeyError:
        raise NotFound("The uploaded object is gone; start the upload again.") from None
    with stream:
        while chunk := stream.read(READ_BLOCK):
            hasher.update(chunk)
    # A size that differs from the declared one can never hash the same: report a mismatch.
    if hasher.size != snap.size:
        return _Proof("", "")
    return _Proof(hasher.sha256_hex(), hasher.content_hash())


def _discard_mismatch(svc: Services, snap: _Snapshot) -> None:
    """A checksum mismatch: abort the session, delete the object; nothing was charged."""
    with svc.database.transaction() as db:
        session = repository.lock(db, snap.upload_id)
        if session is not None and session.state == "completing":
            end(db, session, "aborted")
        _drop_object(db, svc, snap.blob_id, snap.key)


def _drop_object(db: Session, svc: Services, blob_id: int, key: str) -> None:
    """Queue the pending blob for GC and delete its object once this transaction commits.

    The row stays (state `deleting`) until blob GC deletes the object again and then the
    row, so even bytes a concurrent, late join writes under the key are caught.
    """
    db.execute(
        update(Blob)
        .where(Blob.id == blob_id, Blob.state == "pending")
        .values(state="deleting", unreferenced_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    after_commit(db, lambda: svc.store.delete(key))


def _finish(
    db: Session,
    svc: Services,
    actor: Actor,
    session: UploadSession,
    on_conflict: OnConflict,
    proof: _Proof | None,
) -> UploadResult:
    """Phase C: the document or version, the charge and the session's end, in one transaction."""
    assert session.blob_id is not None
    # Lock order as everywhere else: the document row, then its folder's, then the owner's
    # account row (a quota charge). Both are locked before the reservation is released, or
    # a concurrent `POST /files` that holds the folder and waits on the account deadlocks
    # with this complete (seen on PostgreSQL in the soak).
    new_in = None
    if session.document_id is None:
        new_in = documents.target_folder(db, actor, session.folder_id, session.filename)
        folder_repo.lock(db, new_in[0].id)
    else:
        folder_id = db.scalar(
            select(Document.folder_id).where(Document.id == session.document_id).with_for_update()
        )
        if folder_id is not None:
            folder_repo.lock(db, folder_id)
    # The reservation turns into the charge below (same transaction: on any failure both
    # are rolled back and the reservation stands).
    _unreserve(db, session)
    content: documents.StoredBytes | Blob
    if session.skip_upload:
        blob = db.get(Blob, session.blob_id)
        # Access may have been lost since initiate; the same rule applies again.
        if blob is None or not repository.can_read_blob(db, actor, blob.id):
            raise Conflict("The content is no longer available to you; upload it again.")
        content = blob
    else:
        assert session.storage_key is not None and proof is not None
        content = documents.StoredBytes(
            blob_id=session.blob_id,
            key=session.storage_key,
            size=session.size_bytes,
            sha256=session.checksum_sha256,
            # Without the server's own hash (S3 with declared part checksums) the SHA-256
            # is the client's claim: the version says so, and dedup uses the content hash.
            sha256_verified=proof.sha256 is not None,
            content_hash=proof.content_hash,
            block_size=session.part_size if proof.content_hash is not None else None,
        )
    resolution: Resolution
    if new_in is not None:
        folder, name = new_in
        blob = versions.use_content(db, content)
        doc, version = documents.create_document(
            db, actor, folder.id, name, documents.guess_mime(name, session.mime_type), blob
        )
        document_id, version_id, resolution = doc.id, version.id, "saved"
    else:
        assert session.document_id is not None
        saved = versions.save(
            db,
            svc,
            actor,
            session.document_id,
            content,
            base_version_id=session.base_version_id,
            on_conflict=on_conflict,
        )
        document_id, version_id = saved.document.id, saved.version.id
        resolution = saved.resolution
    if isinstance(content, documents.StoredBytes):
        pending = db.get_one(Blob, content.blob_id)
        db.refresh(pending)
        if pending.state == "deleting":  # deduplicated onto an existing verified blob
            blob_id, key = content.blob_id, content.key
            after_commit(db, lambda: blobs.delete_now(svc.store.delete, svc.database, blob_id, key))
    session.state = "completed"
    session.completed_at = utcnow()
    session.result_document_id = document_id
    session.result_version_id = version_id
    session.result_resolution = resolution
    db.flush()
    return _result(db, actor, session)


def _result(db: Session, actor: Actor, session: UploadSession) -> UploadResult:
    """The outcome of a completed session (also for a repeated complete)."""
    assert session.result_document_id is not None and session.result_version_id is not None
    doc, _, level = get_document_for(db, actor, session.result_document_id, Level.VIEW)
    version = db.get(DocumentVersion, session.result_version_id)
    if version is None:
        raise NotFound("The uploaded version no longer exists.")
    out = documents.document_out(db, doc, level)
    return UploadResult(
        **out.model_dump(),
        resolution=session.result_resolution or "saved",
        version=documents.version_out(version, doc.current_version_id),
    )


def discard(svc: Services, actor: Actor, upload_id: str) -> None:
    """DELETE /uploads/{id}: abort the storage upload, delete any joined object; idempotent."""
    with svc.database.transaction() as db:
        session = repository.lock_own(db, actor, upload_id)
        if session.state == "completed":
            raise Conflict("This upload is complete; delete the document or version instead.")
        if session.state in repository.LIVE:
            release(db, svc, session, "aborted")


def release(db: Session, svc: Services, session: UploadSession, state: str) -> None:
    """End a live session: storage first (a failure rolls back and is retried), then the row."""
    if session.storage_key is not None and session.storage_upload_id is not None:
        svc.store.abort_multipart(session.storage_key, session.storage_upload_id)
    if session.storage_key is not None and session.blob_id is not None:
        _drop_object(db, svc, session.blob_id, session.storage_key)
    end(db, session, state)


def end(db: Session, session: UploadSession, state: str) -> None:
    """A live session (row-locked by the caller) ends: its reservation is given back."""
    _unreserve(db, session)
    session.state = state
    db.flush()


def _unreserve(db: Session, session: UploadSession) -> None:
    user_repo.unreserve(db, session.owner_id, session.reserved_bytes)
    session.reserved_bytes = 0
