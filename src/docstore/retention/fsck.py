"""`docstore fsck`: check (and with repair, fix) the invariants between rows and storage.

Checks, each reported as findings:
* quota: every user's `used_bytes` equals the sum of the sizes of their documents'
  versions (trashed but not purged documents still count), and `reserved_bytes` the sum
  of what their live upload sessions reserved;
* ref_count: every blob's `ref_count` equals the number of versions pointing at it, and
  a referenced blob is `active`;
* objects: every referenced blob's object exists with the right size (`rehash`: and the
  right SHA-256);
* leftovers: no blob past its grace period that the GC should have deleted (unreferenced,
  queued but not deleted, or pending from an upload that never finished);
* orphans: no object under the blob prefix without a blob row, past the grace period.

Repair recomputes `used_bytes`, `reserved_bytes` and `ref_count`, reactivates a referenced
blob, runs the blob GC for leftovers, deletes orphan objects and flags damaged blobs and
their versions (`blobs.damaged`, `document_versions.is_damaged`: dedup skips them, the API
shows them).
Damage that is already flagged is reported as known, not as a new finding, so a second
run is clean.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session

from docstore.db import utcnow
from docstore.documents.models import Blob, Document, DocumentVersion
from docstore.retention import gc, runs
from docstore.retention.gc import orphans
from docstore.services import Services
from docstore.uploads import repository as upload_repo
from docstore.uploads.models import UploadSession
from docstore.users.models import User

READ_BLOCK = 1024 * 1024
OBJECT_BATCH = 500


@dataclass
class Finding:
    """One thing found wrong (or, `severity='info'`, already known and flagged)."""

    check: str
    subject: str
    detail: str
    repaired: bool = False
    severity: str = "error"


@dataclass
class FsckReport:
    """Every finding of one run, and what was looked at."""

    findings: list[Finding] = field(default_factory=list)
    checked: dict[str, int] = field(default_factory=dict)
    repair: bool = False
    rehash: bool = False

    @property
    def errors(self) -> list[Finding]:
        """Findings that make the run fail (not the already-flagged ones)."""
        return [f for f in self.findings if f.severity == "error"]

    @property
    def ok(self) -> bool:
        """Whether nothing was wrong."""
        return not self.errors

    def summary(self, max_findings: int = 20) -> dict[str, Any]:
        """What the run record keeps: the counts and the first findings."""
        out = self.as_dict()
        out["errors"] = len(self.errors)
        out["findings"] = out["findings"][:max_findings]
        return out

    def as_dict(self) -> dict[str, Any]:
        """JSON for scripts."""
        return {
            "ok": self.ok,
            "repair": self.repair,
            "rehash": self.rehash,
            "checked": self.checked,
            "findings": [asdict(f) for f in self.findings],
        }


def _expected_used() -> Any:
    return (
        select(func.coalesce(func.sum(DocumentVersion.size_bytes), 0))
        .join(Document, Document.id == DocumentVersion.document_id)
        .where(Document.owner_id == User.id)
        .scalar_subquery()
    )


def check_quota(db: Session, report: FsckReport, repair: bool) -> None:
    """used_bytes == the sum of the user's versions, in one statement (one snapshot)."""
    expected = _expected_used()
    rows = db.execute(
        select(User.id, User.email, User.used_bytes, expected.label("expected")).where(
            User.used_bytes != expected
        )
    ).all()
    report.checked["users"] = int(db.scalar(select(func.count()).select_from(User)) or 0)
    for row in rows:
        finding = Finding(
            "quota",
            f"user {row.id} ({row.email})",
            f"used_bytes is {row.used_bytes}, its versions add up to {row.expected}",
        )
        if repair:
            db.execute(
                update(User)
                .where(User.id == row.id)
                .values(used_bytes=_expected_used())
                .execution_options(synchronize_session=False)
            )
            finding.repaired = True
        report.findings.append(finding)


def _expected_reserved() -> Any:
    return (
        select(func.coalesce(func.sum(UploadSession.reserved_bytes), 0))
        .where(UploadSession.owner_id == User.id, UploadSession.state.in_(upload_repo.LIVE))
        .scalar_subquery()
    )


def check_reservations(db: Session, report: FsckReport, repair: bool) -> None:
    """reserved_bytes == what the user's live upload sessions reserved (one statement)."""
    expected = _expected_reserved()
    rows = db.execute(
        select(User.id, User.email, User.reserved_bytes, expected.label("expected")).where(
            User.reserved_bytes != expected
        )
    ).all()
    for row in rows:
        finding = Finding(
            "quota",
            f"user {row.id} ({row.email})",
            f"reserved_bytes is {row.reserved_bytes}, its open uploads reserved {row.expected}",
        )
        if repair:
            db.execute(
                update(User)
                .where(User.id == row.id)
                .values(reserved_bytes=_expected_reserved())
                .execution_options(synchronize_session=False)
            )
            finding.repaired = True
        report.findings.append(finding)


def check_ref_counts(db: Session, report: FsckReport, repair: bool, now: datetime) -> None:
    """ref_count == the versions pointing at the blob; a referenced blob is active."""
    refs = (
        select(func.count())
        .select_from(DocumentVersion)
        .where(DocumentVersion.blob_id == Blob.id)
        .scalar_subquery()
    )
    rows = db.execute(
        select(Blob.id, Blob.ref_count, Blob.state, refs.label("refs")).where(
            Blob.state != "pending",
            or_(Blob.ref_count != refs, and_(Blob.state != "active", refs > 0)),
        )
    ).all()
    report.checked["blobs"] = int(db.scalar(select(func.count()).select_from(Blob)) or 0)
    for row in rows:
        if row.refs > 0 and row.state != "active":
            finding = Finding(
                "blob_state",
                f"blob {row.id}",
                f"{row.refs} version(s) point at a blob in state {row.state!r}",
            )
            if repair:
                db.execute(
                    update(Blob)
                    .where(Blob.id == row.id)
                    .values(state="active", unreferenced_at=None)
                    .execution_options(synchronize_session=False)
                )
                finding.repaired = True
            report.findings.append(finding)
        if row.state == "deleting" and row.refs == 0:
            continue  # queued for the GC; its ref_count no longer matters
        if row.ref_count != row.refs:
            finding = Finding(
                "ref_count",
                f"blob {row.id}",
                f"ref_count is {row.ref_count}, {row.refs} version(s) point at it",
            )
            if repair:
                db.execute(
                    update(Blob)
                    .where(Blob.id == row.id)
                    .values(
                        ref_count=refs,
                        unreferenced_at=now if row.refs == 0 else None,
                    )
                    .execution_options(synchronize_session=False)
                )
                finding.repaired = True
            report.findings.append(finding)


def _sha256(svc: Services, key: str) -> str | None:
    try:
        f = svc.store.open(key)
    except KeyError:
        return None
    digest = hashlib.sha256()
    with f:
        while block := f.read(READ_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def _flag_damaged(db: Session, blob_id: int) -> None:
    db.execute(
        update(Blob)
        .where(Blob.id == blob_id)
        .values(damaged=True)
        .execution_options(synchronize_session=False)
    )
    db.execute(
        update(DocumentVersion)
        .where(DocumentVersion.blob_id == blob_id)
        .values(is_damaged=True)
        .execution_options(synchronize_session=False)
    )


def check_objects(svc: Services, report: FsckReport, repair: bool, rehash: bool) -> None:
    """Every referenced blob's object exists, has its size (and, rehash, its SHA-256)."""
    last = 0
    count = 0
    referenced = select(DocumentVersion.blob_id).where(DocumentVersion.blob_id == Blob.id)
    while True:
        with svc.database.transaction() as db:
            blobs = db.execute(
                select(
                    Blob.id,
                    Blob.storage_key,
                    Blob.size_bytes,
                    Blob.sha256,
                    Blob.damaged,
                    Blob.verified,
                )
                .where(Blob.id > last, referenced.exists())
                .order_by(Blob.id)
                .limit(OBJECT_BATCH)
            ).all()
        if not blobs:
            break
        last = blobs[-1].id
        damaged: list[int] = []
        for b in blobs:
            count += 1
            problem = None
            info = svc.store.head(b.storage_key)
            if info is None:
                problem = ("missing_object", "the stored object is missing")
            elif info.size != b.size_bytes:
                problem = (
                    "size_mismatch",
                    f"the object has {info.size} bytes, the blob row says {b.size_bytes}",
                )
            elif rehash and _sha256(svc, b.storage_key) != b.sha256:
                problem = ("checksum_mismatch", "the object's SHA-256 differs from the blob's")
                if not b.verified:
                    # An S3 upload's SHA-256 the server never confirmed: the uploader's claim
                    # was false, the bytes are what S3 checked (uploads.verification marks it).
                    report.findings.append(
                        Finding(
                            "unverified_checksum",
                            f"blob {b.id}",
                            "the uploader's claimed SHA-256 does not match the object "
                            "(never verified; not damage)",
                            severity="info",
                        )
                    )
                    continue
            if problem is None:
                continue
            if b.damaged:
                report.findings.append(
                    Finding(
                        problem[0],
                        f"blob {b.id}",
                        problem[1] + " (flagged damaged)",
                        severity="info",
                    )
                )
                continue
            finding = Finding(problem[0], f"blob {b.id}", problem[1])
            if repair:
                damaged.append(b.id)
                finding.repaired = True
            report.findings.append(finding)
        if damaged:
            with svc.database.transaction() as db:
                for blob_id in damaged:
                    _flag_damaged(db, blob_id)
    with svc.database.transaction() as db:
        mismatched = db.execute(
            select(DocumentVersion.id, DocumentVersion.size_bytes, Blob.size_bytes.label("blob"))
            .join(Blob, Blob.id == DocumentVersion.blob_id)
            .where(DocumentVersion.size_bytes != Blob.size_bytes)
        ).all()
    for v in mismatched:
        report.findings.append(
            Finding(
                "version_size",
                f"version {v.id}",
                f"the version says {v.size_bytes} bytes, its blob {v.blob}",
            )
        )
    report.checked["objects"] = count


def check_orphans(svc: Services, report: FsckReport, repair: bool, now: datetime) -> None:
    """Objects no blob row knows of, older than the orphan grace period."""
    cutoff = now - timedelta(seconds=svc.settings.blob_orphan_grace_seconds)
    count = 0
    for info in list(orphans(svc.database, svc.store, cutoff)):
        count += 1
        finding = Finding(
            "orphan_object",
            f"object {info.key}",
            f"{info.size} bytes, no blob row, last written {info.last_modified:%Y-%m-%d %H:%M}",
        )
        if repair:
            svc.store.delete(info.key)
            finding.repaired = True
        report.findings.append(finding)
    report.checked["orphans"] = count


def _leftovers(db: Session, svc: Services, now: datetime) -> list[tuple[str, int, str]]:
    """Blob rows whose object should be gone by now: what the blob GC has not done yet."""
    settings = svc.settings
    gc_cutoff = now - timedelta(seconds=settings.blob_gc_grace_seconds)
    pending_cutoff = now - timedelta(seconds=gc.pending_grace_seconds(settings))
    unreferenced = ~select(DocumentVersion.id).where(DocumentVersion.blob_id == Blob.id).exists()
    rows = db.execute(
        select(Blob.id, Blob.state, Blob.delete_attempts)
        .where(
            or_(
                and_(Blob.state == "active", unreferenced, Blob.unreferenced_at < gc_cutoff),
                and_(Blob.state == "deleting", Blob.unreferenced_at < gc_cutoff),
                and_(Blob.state == "pending", Blob.created_at < pending_cutoff),
            )
        )
        .order_by(Blob.id)
    ).all()
    out = []
    for blob_id, state, attempts in rows:
        if state == "active":
            out.append(("unreferenced_blob", blob_id, "no version uses it, past the GC grace"))
        elif state == "deleting":
            tries = f" ({attempts} failed storage deletes)" if attempts else ""
            out.append(("undeleted_blob", blob_id, f"queued for deletion, not deleted{tries}"))
        else:
            out.append(("stale_pending", blob_id, "an upload that never finished"))
    return out


def check_leftovers(svc: Services, report: FsckReport, repair: bool, now: datetime) -> None:
    """No stored object outlives the grace periods without a version using it.

    Repair runs the blob GC as of `now`; what its storage deletes could not remove stays
    reported.
    """
    with svc.database.transaction() as db:
        found = _leftovers(db, svc, now)
    remaining: set[int] = {blob_id for _, blob_id, _ in found}
    if repair and found:
        gc.collect(svc.database, svc.store, svc.settings, now=now)
        with svc.database.transaction() as db:
            remaining = {blob_id for _, blob_id, _ in _leftovers(db, svc, now)}
    for check, blob_id, detail in found:
        report.findings.append(
            Finding(check, f"blob {blob_id}", detail, repaired=repair and blob_id not in remaining)
        )


def run(
    svc: Services, *, repair: bool = False, rehash: bool = False, now: datetime | None = None
) -> FsckReport:
    """Run every check; with `repair`, fix what can be fixed safely. The run is recorded in
    `job_runs` (the admin console shows the last one)."""
    return runs.timed(
        svc.database,
        runs.FSCK,
        lambda: _run(svc, repair=repair, rehash=rehash, now=now),
        lambda report: runs.Outcome(report.ok, report.summary()),
    )


def _run(svc: Services, *, repair: bool, rehash: bool, now: datetime | None) -> FsckReport:
    now = now or utcnow()
    report = FsckReport(repair=repair, rehash=rehash)
    with svc.database.transaction() as db:
        check_quota(db, report, repair)
        check_reservations(db, report, repair)
    with svc.database.transaction() as db:
        check_ref_counts(db, report, repair, now)
    check_objects(svc, report, repair, rehash)
    check_leftovers(svc, report, repair, now)
    check_orphans(svc, report, repair, now)
    return report
