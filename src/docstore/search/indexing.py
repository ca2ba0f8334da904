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
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
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
# A text of at most this many characters has a tsvector well under PostgreSQL's 1 MiB
# (at most 4 bytes a character of lexemes, 2 of position and 4 of entry per word of at
# least one character and a separator): its tsvector is computed with the batch's.
SAFE_TSV_CHARS = 100_000
# PostgreSQL's deadlock_detected and serialization_failure: the batch is written again,
# one document per transaction.
RETRYABLE = {"40P01", "40001"}


def _values(item: Extracted) -> dict[str, Any]:
    return {
        "version_id": item.version_id,
        "status": item.status.value,
        "reason": item.reason,
        "body": item.body,
        "updated_at": utcnow(),
    }


def _set_tsv(db: Session, document_id: int) -> None:
    """The tsvector of one long text, or of its first FALLBACK_CHARS past the 1 MiB bound."""
    try:
        with db.begin_nested():
            db.execute(_SET_TSV, {"n": 1 << 30, "id": document_id})
    except DBAPIError:  # past tsvector's 1 MiB: index the beginning
        db.execute(_SET_TSV, {"n": FALLBACK_CHARS, "id": document_id})


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
    values = _values(item)
    done = db.execute(
        update(SearchText).where(SearchText.document_id == item.document_id).values(**values)
    )
    if done.rowcount == 0:  # type: ignore[attr-defined]
        db.execute(insert(SearchText).values(document_id=item.document_id, **values))
    if db.get_bind().dialect.name == "postgresql":
        _set_tsv(db, item.document_id)
    return True


def _store_batch(db: Session, items: list[Extracted]) -> tuple[set[int], int]:
    """Write the texts of a batch in one transaction (four statements on PostgreSQL instead
    of seven round trips and a commit per document: 64 documents/s on the bench); the ids
    written and how many documents another transaction held (or were gone).

    Lock order as in `_store`: every document row first, in id order, in one statement,
    then the texts. Rows another transaction holds (a purge, a new version) are skipped,
    never waited for, and stay pending for the next pass: this never waits on a document
    while holding texts, and never writes the text of a document purged meanwhile."""
    ids = sorted(i.document_id for i in items)
    locked = db.execute(
        select(Document.id, Document.current_version_id)
        .where(Document.id.in_(ids))
        .order_by(Document.id)
        .with_for_update(skip_locked=True)
    )
    current = {doc_id: version_id for doc_id, version_id in locked}
    fresh = sorted(
        (i for i in items if i.document_id in current and current[i.document_id] == i.version_id),
        key=lambda i: i.document_id,
    )
    held = len(ids) - len(current)
    if not fresh:
        return set(), held
    postgres = db.get_bind().dialect.name == "postgresql"
    upsert: Any = pg_insert(SearchText) if postgres else sqlite_insert(SearchText)
    upsert = upsert.values([{"document_id": i.document_id, **_values(i)} for i in fresh])
    columns = ("version_id", "status", "reason", "body", "updated_at")
    db.execute(
        upsert.on_conflict_do_update(
            index_elements=[SearchText.document_id],
            set_={c: getattr(upsert.excluded, c) for c in columns},
        )
    )
    if postgres:
        short = [i.document_id for i in fresh if len(i.body or "") <= SAFE_TSV_CHARS]
        db.execute(
            text(
                "UPDATE search_texts SET tsv = to_tsvector('docstore_search'::regconfig, body) "
                "WHERE document_id = ANY(:ids)"
            ),
            {"ids": short},
        )
        for item in fresh:
            if len(item.body or "") > SAFE_TSV_CHARS:
                _set_tsv(db, item.document_id)
    return {i.document_id for i in fresh}, held


def _write(svc: Services, results: list[Extracted]) -> tuple[set[int], int]:
    """Store a batch's texts: in one transaction, or one document per transaction when
    PostgreSQL aborted it for a deadlock (`docstore reindex --all` updates texts without
    the documents' locks); the ids written and how many documents were held elsewhere."""
    try:
        with svc.database.transaction() as db:
            return _store_batch(db, results)
    except DBAPIError as exc:
        if getattr(exc.orig, "sqlstate", None) not in RETRYABLE:
            raise
        log.warning("search: a batch of texts was aborted (%s), writing one by one", exc.orig)
    stored: set[int] = set()
    for item in results:
        with svc.database.transaction() as db:
            if _store(db, item):
                stored.add(item.document_id)
    return stored, 0


def index_batch(
    svc: Services,
    *,
    user_id: int | None = None,
    batch: int = BATCH,
    progress: Progress,
    after: int = 0,
) -> int | None:
    """Index up to `batch` pending documents with ids above `after`; the last id taken
    (None: nothing was pending there, or the pass stops)."""
    with svc.database.read_transaction() as db:
        pending = _pending(user_id).where(Document.id > after).order_by(Document.id)
        rows = list(db.execute(pending.limit(batch)))
    if not rows:
        return None
    limits = limits_for(svc)
    results: list[Extracted] = []
    for row in rows:
        try:
            results.append(_extract_one(svc, row, limits))
        except (StorageError, OSError) as exc:
            progress.errors.append(f"document {row[0]}: {exc}")
            break  # the store is unwell: the rest waits for the next pass
    stored, held = _write(svc, results) if results else (set(), 0)
    for item in results:
        if item.document_id not in stored:
            progress.stale += 1  # a newer version, or held by another writer
        elif item.status is IndexStatus.INDEXED:
            progress.indexed += 1
        elif item.status is IndexStatus.FAILED:
            progress.failed += 1
        else:
            progress.skipped += 1
    if len(results) < len(rows) or (held and held == len(results)):
        return None  # stop this pass (all held by other writers: the next pass takes them)
    return int(rows[-1][0])


def index_pending(
    svc: Services,
    *,
    user_id: int | None = None,
    budget_seconds: float | None = None,
    on_batch: Callable[[Progress], None] | None = None,
    max_batches: int = 1_000_000,
) -> Progress:
    """Index pending documents batch by batch, until none are left or the budget is spent.

    Each batch starts after the last id of the one before: finding pending documents from
    the first id every time read every document row per batch (240 ms a batch with
    100,000 documents). Those passed over (a newer version meanwhile, held by another
    writer) are looked for once more from the start."""
    progress = Progress()
    deadline = None if budget_seconds is None else time.monotonic() + budget_seconds
    after, again = 0, True
    for _ in range(max_batches):
        last = index_batch(svc, user_id=user_id, progress=progress, after=after)
        if last is None:
            if not (after and again and progress.stale):
                break
            after, again = 0, False
            continue
        after = last
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
