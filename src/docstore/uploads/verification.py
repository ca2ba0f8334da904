"""The blob verification job: hash stored objects the server has not hashed itself.

In S3 mode an upload with part checksums is proven by its content hash (S3 checked each
part's SHA-256, docstore.hashing); the file's plain SHA-256 the API reports is the
client's claim, shown as `checksum_verified: false`. This job reads such an object once,
off the request path, and settles the claim: the blob becomes `verified` (and so do its
versions), or `checksum_mismatch` (the uploader lied or erred: the version keeps
`checksum_verified: false` for good and the blob is never a dedup target). The same read
fills in the content hash of blobs stored before migration 0014 (in S3 mode, where dedup
needs it; local mode deduplicates on the verified SHA-256 and needs no backfill).

A content hash that does not match what storage proved at upload means storage broke its
promise: the blob and its versions are flagged damaged, as fsck does.

Rate-limited: at most `blob_verify_bytes_per_run` object bytes per pass (one object even
when it is bigger), so storage reads and server CPU stay bounded whatever the upload rate.
Storage is read with no transaction open; each result is written in its own short one,
guarded on the row still being what was read.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, or_, select, update

from docstore.documents.models import Blob, DocumentVersion
from docstore.hashing import BlockHasher
from docstore.services import Services
from docstore.storage.base import StorageError
from docstore.uploads.service import READ_BLOCK, plan_parts

log = logging.getLogger(__name__)

BATCH = 100


@dataclass
class VerifyReport:
    checked: int = 0
    verified: int = 0
    mismatched: int = 0
    content_hashed: int = 0
    damaged: int = 0
    missing: int = 0
    bytes_read: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def verify_blobs(svc: Services, *, budget: int | None = None) -> VerifyReport:
    """One pass over blobs needing a hash, until `budget` bytes were read (settings')."""
    budget = svc.settings.blob_verify_bytes_per_run if budget is None else budget
    report = VerifyReport()
    if budget <= 0:
        return report
    wanted: ColumnElement[bool] = Blob.verified.is_(False)
    if svc.store.kind == "s3":
        wanted = or_(wanted, Blob.content_hash.is_(None))
    last = 0
    while report.bytes_read < budget:
        with svc.database.transaction() as db:
            rows = db.execute(
                select(
                    Blob.id,
                    Blob.storage_key,
                    Blob.size_bytes,
                    Blob.sha256,
                    Blob.verified,
                    Blob.content_hash,
                    Blob.block_size,
                )
                .where(
                    Blob.id > last,
                    Blob.state == "active",
                    Blob.damaged.is_(False),
                    Blob.checksum_mismatch.is_(False),
                    wanted,
                )
                .order_by(Blob.id)
                .limit(BATCH)
            ).all()
        if not rows:
            break
        for row in rows:
            last = row.id
            if report.bytes_read and report.bytes_read + row.size_bytes > budget:
                return report
            _verify_one(svc, row, report)
    return report


def _verify_one(svc: Services, row: Any, report: VerifyReport) -> None:
    block = row.block_size or plan_parts(row.size_bytes, svc.settings.upload_part_size)[0]
    hasher = BlockHasher(block)
    try:
        with svc.store.open(row.storage_key) as stream:
            while chunk := stream.read(READ_BLOCK):
                hasher.update(chunk)
    except KeyError:
        report.missing += 1  # fsck and GC deal with missing objects
        return
    except StorageError:
        log.warning("blob %s: storage could not be read; verified on a later pass", row.id)
        return
    report.checked += 1
    report.bytes_read += hasher.size
    content_hash = hasher.content_hash()
    still = and_(
        Blob.id == row.id,
        Blob.state == "active",
        Blob.sha256 == row.sha256,
        Blob.damaged.is_(False),
    )
    with svc.database.transaction() as db:
        proven = row.content_hash is not None and row.block_size is not None
        if hasher.size != row.size_bytes or (proven and content_hash != row.content_hash):
            log.error("blob %s: the stored bytes differ from what storage proved", row.id)
            db.execute(update(Blob).where(still).values(damaged=True))
            db.execute(
                update(DocumentVersion)
                .where(DocumentVersion.blob_id == row.id)
                .values(is_damaged=True)
            )
            report.damaged += 1
            return
        values: dict[str, Any] = {}
        if not proven:
            values |= {"content_hash": content_hash, "block_size": block}
            report.content_hashed += 1
        if not row.verified:
            if hasher.sha256_hex() == row.sha256:
                values["verified"] = True
                report.verified += 1
            else:
                values["checksum_mismatch"] = True
                report.mismatched += 1
        result = db.execute(update(Blob).where(still).values(**values))
        changed = int(result.rowcount)  # type: ignore[attr-defined]
        if changed and values.get("verified"):
            db.execute(
                update(DocumentVersion)
                .where(DocumentVersion.blob_id == row.id)
                .values(checksum_verified=True)
            )
