"""The content index's writer: extract the text of each document's current version and
store it (search_texts; the FTS5 table follows by trigger on SQLite, the tsvector column is
computed here on PostgreSQL). Functions here take `svc` and open their own transactions:
the worker's job (tasks.py) and `docstore reindex` call them.

A document is pending while its search_texts row is missing or names another version:
a new or restored version is pending by construction, so no write path has to remember
the index. Purging a document deletes its row (foreign key, ON DELETE CASCADE).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, insert, or_, select, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from docstore.db import utcnow
from docstore.documents.models import Blob, Document, DocumentVersion
from docstore.search.extract import ExtractionError, Limits, Unsupported, extract, kind_of
from docstore.search.models import IndexStatus, SearchText
from docstore.services import Services
from docstore.storage.base import StorageError

log = logging.getLogger(__name__)

MIB = 1024 * 1024
BATCH = 64
# The tsvector of a very long text can pass PostgreSQL's 1 MiB limit: then the first
# FALLBACK_CHARS are indexed (the snippet still shows from the whole text).
FALLBACK_CHARS = 200_000


@dataclass
class Extracted:
    document_id: int
    version_id: int
    status: IndexStatus
    reason: str | None = None
    body: str | None = None


@dataclass
class Progress:
    indexed: int = 0
    failed: int = 0
    skipped: int = 0
    stale: int = 0  # a newer version arrived meanwhile: the next pass takes it
    errors: list[str] = field(default_factory=list)

    @property
    def done(self) -> int:
        return self.indexed + self.failed + self.skipped

    def as_dict(self) -> dict[str, Any]:
        return {
            "indexed": self.indexed,
            "failed": self.failed,
            "skipped": self.skipped,
            "stale": self.stale,
        }


def _pending(user_id: int | None) -> Any:
    st = SearchText
    stmt = (
        select(
            Document.id,
            Document.current_version_id,
            Document.name,
            Document.mime_type,
            Blob.storage_key,
            Blob.size_bytes,
        )
        .join(DocumentVersion, DocumentVersion.id == Document.current_version_id)
        .join(Blob, Blob.id == DocumentVersion.blob_id)
        .outerjoin(st, st.document_id == Document.id)
        .where(or_(st.version_id.is_(None), st.version_id != Document.current_version_id))
    )
    return stmt.where(Document.owner_id == user_id) if user_id is not None else stmt


def pending_count(svc: Services, user_id: int | None = None) -> int:
    """How many documents wait for their current version's text."""
    with svc.database.read_transaction() as db:
        sub = _pending(user_id).subquery()
        return int(db.scalar(select(func.count()).select_from(sub)) or 0)


def limits_for(svc: Services) -> Limits:
    s = svc.settings
    return Limits(int(s.search_text_max_mib * MIB), int(s.search_unzipped_max_mib * MIB))


def _extract_one(svc: Services, row: Any, limits: Limits) -> Extracted:
    doc_id, version_id, name, mime, key, size = row
    kind = kind_of(mime, name)
    if kind is None:
        return Extracted(doc_id, version_id, IndexStatus.SKIPPED, f"no text extracted from {mime}")
    file_cap = int(svc.settings.search_file_max_mib * MIB)
    textual = kind.startswith("text/")
    if size > file_cap and not textual:
        return Extracted(
            doc_id, version_id, IndexStatus.SKIPPED, f"larger than {file_cap} bytes read for search"
        )
    try:
        with svc.store.open(key) as stream:
            data = stream.read(limits.text_chars * 4 if textual else file_cap)
    except KeyError:
        return Extracted(doc_id, version_id, IndexStatus.FAILED, "the stored bytes are missing")
    try:
        body = extract(data, kind, limits)
    except Unsupported:
        return Extracted(doc_id, version_id, IndexStatus.SKIPPED, f"no text extracted from {mime}")
    except ExtractionError as exc:
        return Extracted(doc_id, version_id, IndexStatus.FAILED, str(exc)[:300])
    except Exception as exc:  # a parser's bug on a hostile file must not stop the worker
        log.warning("search: extracting document %s failed", doc_id, exc_info=True)
        return Extracted(
            doc_id, version_id, IndexStatus.FAILED, f"{type(exc).__name__}: {exc}"[:300]
        )
    return Extracted(doc_id, version_id, IndexStatus.INDEXED, None, body)


_SET_TSV = text(
    "UPDATE search_texts SET tsv = to_tsvector('docstore_search'::regconfig, left(body, :n)) "
    "WHERE document_id = :id"
)


def _store(db: Session, item: Extracted) -> bool:
    """Write one document's text if its version is still the current one. The document's
    row is locked first, in its own transaction (index_batch): a purge deletes the document
    and then, by cascade, its text, so taking them in the same order never deadlocks with it
    (seen in the soak, when one transaction wrote a whole batch), and a document purged
    meanwhile is simply gone (no foreign-key error for its text)."""
    current = db.scalar(
        select(Document.current_version_id).where(Document.id == item.document_id).with_for_update()
    )
    if current != item.version_id:
        return False
    values = {
        "version_id": item.version_id,
        "status": item.status.value,
        "reason": item.reason,
        "body": item.body,
        "updated_at": utcnow(),
    }
    done = db.execute(
        update(SearchText).where(SearchText.document_id == item.document_id).values(**values)
    )
    if done.rowcount == 0:  # type: ignore[attr-defined]
        db.execute(insert(SearchText).values(document_id=item.document_id, **values))
    if db.get_bind().dialect.name == "postgresql":
        try:
            with db.begin_nested():
                db.execute(_SET_TSV, {"n": 1 << 30, "id": item.document_id})
        except DBAPIError:  # past tsvector's 1 MiB: index the beginning
            db.execute(_SET_TSV, {"n": FALLBACK_CHARS, "id": item.document_id})
    return True


def index_batch(
    svc: Services, *, user_id: int | None = None, batch: int = BATCH, progress: Progress
) -> int:
    """Index up to `batch` pending documents; the number taken (0: nothing was pending)."""
    with svc.database.read_transaction() as db:
        rows = list(db.execute(_pending(user_id).order_by(Document.id).limit(batch)))
    if not rows:
        return 0
    limits = limits_for(svc)
    results: list[Extracted] = []
    for row in rows:
        try:
            results.append(_extract_one(svc, row, limits))
        except (StorageError, OSError) as exc:
            progress.errors.append(f"document {row[0]}: {exc}")
            break  # the store is unwell: the rest waits for the next pass
    for item in results:
        with svc.database.transaction() as db:
            stored = _store(db, item)
        if not stored:
            progress.stale += 1
        elif item.status is IndexStatus.INDEXED:
            progress.indexed += 1
        elif item.status is IndexStatus.FAILED:
            progress.failed += 1
        else:
            progress.skipped += 1
    if len(results) < len(rows):
        return 0  # stop this pass
    return len(rows)


def index_pending(
    svc: Services,
    *,
    user_id: int | None = None,
    budget_seconds: float | None = None,
    on_batch: Callable[[Progress], None] | None = None,
    max_batches: int = 1_000_000,
) -> Progress:
    """Index pending documents batch by batch, until none are left or the budget is spent."""
    progress = Progress()
    deadline = None if budget_seconds is None else time.monotonic() + budget_seconds
    for _ in range(max_batches):
        if index_batch(svc, user_id=user_id, progress=progress) == 0:
            break
        if on_batch is not None:
            on_batch(progress)
        if deadline is not None and time.monotonic() > deadline:
            break
    return progress


def mark_all_pending(svc: Services, user_id: int | None = None) -> int:
    """Make every document (of `user_id`) pending again: `docstore reindex --all`."""
    with svc.database.transaction() as db:
        stmt = update(SearchText).values(version_id=None)
        if user_id is not None:
            stmt = stmt.where(
                SearchText.document_id.in_(select(Document.id).where(Document.owner_id == user_id))
            )
        return int(db.execute(stmt).rowcount)  # type: ignore[attr-defined]
