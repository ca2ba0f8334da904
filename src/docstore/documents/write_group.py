"""Group commit for small uploads: concurrent requests share one transaction and one fsync.

Why: a 4 KiB upload's own work is small; what it paid for was being alone — a transaction
(with its commit), worker-thread hops, and a directory fsync per file (issue 27, "small
files"). Here a request whose whole body is in memory hands its bytes and its database
work (`work(db)`) to `WriteGroup.submit`. Requests that arrive while a group is being
written form the next group, so under load one worker-thread hop, one directory fsync and
one commit serve every request that waited; a lone request pays what it paid before, less.

A group, on one worker thread:
1. each object is written to a temp file, fsynced and renamed into place; then each
   directory that gained a name is fsynced once (`LocalBlobStore.put_many`; other stores
   put the objects one by one, several at once). An object small enough to be kept
   inline (`storage.inline`, keys from `new_key`) is not written here: its row is
   inserted at the end of step 2, in the transaction of its blob row, for the jobs whose
   work succeeded;
2. one transaction runs every request's `work` whose bytes were stored, each in a
   savepoint (when there is more than one); works that only checked and `defer`red their
   rows have them written together, set-based, one batch per kind (WebDAV's new files:
   `recording.record_new_files`); then it commits — on SQLite; on PostgreSQL each
   request's work is a transaction of its own (a shared one locked several users' rows at
   once and deadlocked with concurrent writers);
3. each request is answered with its own result or its own error — on PostgreSQL as soon
   as its own transaction has committed (or failed), not when the whole group is done: an
   upload that waits on a row lock must not hold back answers that are already durable.

Atomicity per request: a request whose work raises has its savepoint rolled back, its
`on_rollback` hooks run and its `after_commit` hooks dropped (db.roll_back_hooks_since),
and its object deleted; the others commit. If the transaction as a whole fails, every
request in it gets that error and every object is deleted; a PostgreSQL deadlock between
two processes' groups is retried with each request in a transaction of its own.

Durability: nothing is answered before its bytes are fsynced and its rows committed. A
crash after the objects are placed and before the commit leaves objects no blob row names:
the storage sweep deletes those after `blob_orphan_grace_seconds` (retention.gc.orphans),
so the small path needs no pending blob row (and no transaction before the bytes).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from docstore.db import hooks_mark, roll_back_hooks_since
from docstore.documents import blobs
from docstore.services import Services
from docstore.storage.inline import inline_store, is_inline

log = logging.getLogger(__name__)

T = TypeVar("T")

# PostgreSQL: deadlock_detected, serialization_failure.
_RETRY_ALONE = {"40P01", "40001"}
# At most this many requests in one group (the rest wait for the next): bounds the time
# the SQLite write lock (or PostgreSQL's row locks) are held by one transaction.
MAX_GROUP = 64


@dataclass
class _Job(Generic[T]):
    key: str
    data: bytes
    work: Callable[[Session], T]
    future: asyncio.Future[T]
    order: Any = None
    checks_first: bool = False
    outcome: tuple[bool, Any] | None = field(default=None)


class WriteGroup:
    """Writes small uploads in groups, one group at a time per process."""

    def __init__(self, svc: Services) -> None:
        self.svc = svc
        self._loop: asyncio.AbstractEventLoop | None = None
        self._jobs: list[_Job[Any]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def submit(
        self,
        key: str,
        data: bytes,
        work: Callable[[Session], T],
        *,
        order: Any = None,
        checks_first: bool = False,
    ) -> T:
        """Store `data` under `key` (a new key: blobs.new_key) and run `work(db)` in the
        group's transaction once the bytes are durable; return its result once committed,
        or raise its error (or the group's). `order`: jobs of a group run sorted by it
        (e.g. the folder id), so that groups of two processes take row locks in one order.
        `checks_first`: while `batching`, `work` writes nothing it would have to undo (a
        token's last use aside): it raises, defers its rows (`Deferred`) or returns its
        writes as `Then`; it then runs without a savepoint of its own.
        """
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # state belongs to one event loop (tests run several)
            self._loop, self._jobs, self._flusher = loop, [], None
        job: _Job[T] = _Job(key, data, work, loop.create_future(), order, checks_first)
        job.future.add_done_callback(_retrieve)
        self._jobs.append(job)
        if self._flusher is None:
            # A context of its own: the flusher is no part of the request that started it
            # (the transaction guard keeps one open transaction per request).
            self._flusher = loop.create_task(self._flush(), context=contextvars.Context())
        # A caller that goes away (client disconnect) must not cancel the others' group;
        # its own upload still completes (or not) with the group.
        return await asyncio.shield(job.future)

    async def _flush(self) -> None:
        try:
            while self._jobs:
                group, self._jobs = self._jobs[:MAX_GROUP], self._jobs[MAX_GROUP:]
                try:
                    await run_in_threadpool(self.write, group)
                except asyncio.CancelledError:
                    for job in group:
                        job.future.cancel()
                    raise
                except Exception as exc:  # a bug in the group itself: every job gets it
                    for job in group:
                        if not job.future.done():
                            job.future.set_exception(exc)
                    continue
                for job in group:
                    _settle(job)
        finally:
            self._flusher = None

    def write(self, group: list[_Job[Any]]) -> None:
        """Store the group's bytes, run its work in one transaction; each job's outcome
        is set on it (on a worker thread)."""
        files = [job for job in group if not is_inline(job.key)]
        errors = put_objects(self.svc, [(job.key, job.data) for job in files])
        stored = [job for job in group if is_inline(job.key)]
        for job, error in zip(files, errors, strict=True):
            if error is None:
                stored.append(job)
            else:
                job.outcome = (False, error)
        stored.sort(key=lambda job: (job.order is None, job.order))
        if self.svc.database.is_postgres:
            # One transaction per upload on PostgreSQL: a shared one holds the rows of several
            # users (their quota rows, blobs, folders) at once, and a concurrent multipart
            # complete or another process's group that locks two of them in the other order
            # deadlocks with it (the soak: 503 on a complete). The group still saves the
            # thread hops and the directory fsync; SQLite has one writer, so no such cycle.
            self._each_alone(stored, answer=True)
            return
        try:
            self._transaction(stored)
        except DBAPIError as exc:
            if len(stored) < 2 or _sqlstate(exc) not in _RETRY_ALONE:
                _fail(stored, exc)
            else:
                log.info("write group: %s; each upload again alone", _sqlstate(exc))
                self._each_alone(stored)
                return
        except Exception as exc:
            _fail(stored, exc)
        for job in stored:
            self._drop_if_failed(job)

    def _each_alone(self, jobs: list[_Job[Any]], *, answer: bool = False) -> None:
        """Each job's work in a transaction of its own; with `answer`, each job is answered
        as soon as its transaction ends (from this worker thread, through the loop)."""
        for job in jobs:
            try:
                self._transaction([job])
            except Exception as alone:
                _fail([job], alone)
            self._drop_if_failed(job)
            if answer and self._loop is not None:
                self._loop.call_soon_threadsafe(_settle, job)

    def _drop_if_failed(self, job: _Job[Any]) -> None:
        """A job whose rows did not commit: no row names its object, which goes."""
        assert job.outcome is not None
        if not job.outcome[0]:
            self._delete(job.key)

    def _transaction(self, jobs: list[_Job[Any]]) -> None:
        """One transaction for `jobs`; each job's work in a savepoint when there are
        several, and the works that deferred their rows (`defer`) recorded together, one
        batch per kind. Sets each job's outcome (a job's own error is its outcome; an error
        of the transaction itself propagates)."""
        if not jobs:
            return
        with self.svc.database.transaction() as db:
            if len(jobs) == 1:  # alone: the transaction is the job's own
                jobs[0].outcome = (True, jobs[0].work(db))
            else:
                self._works(db, jobs)
            # The inline objects of the jobs that succeeded, in their rows' transaction.
            inline = inline_store(self.svc.store)
            if inline is not None:
                ok = [job for job in jobs if is_inline(job.key) and job.outcome and job.outcome[0]]
                inline.insert(db, [(job.key, job.data) for job in ok])

    def _works(self, db: Session, jobs: list[_Job[Any]]) -> None:
        """Several jobs' works in one transaction (see `_transaction`)."""
        db.info[_BATCHING] = True
        batches: dict[Any, list[tuple[_Job[Any], Deferred]]] = {}
        for job in jobs:
            if job.checks_first:
                self._checked(db, job)
            else:
                self._in_savepoint(db, job)
            assert job.outcome is not None
            ok, result = job.outcome
            if ok and isinstance(result, Deferred):
                batches.setdefault(result.kind, []).append((job, result))
        again: list[_Job[Any]] = []
        for batch in batches.values():
            again += self._record(db, batch)
        db.info[_BATCHING] = False
        for job in again:  # each alone now, after the batch it could not be part of
            self._in_savepoint(db, job)

    def _in_savepoint(self, db: Session, job: _Job[Any]) -> None:
        """The job's work in a savepoint; its outcome set (its error rolls back only it)."""
        job.outcome = _in_savepoint(db, lambda: job.work(db))

    @staticmethod
    def _checked(db: Session, job: _Job[Any]) -> None:
        """A `checks_first` job's work, with no savepoint: it only reads and then defers
        its rows or returns its writes as `Then`, which alone get a savepoint. A savepoint
        per job was ~12 % of a group's CPU (py-spy, 8 rclone-like clients)."""
        try:
            result = job.work(db)
        except Exception as exc:
            job.outcome = (False, exc)
            return
        if isinstance(result, Then):
            job.outcome = _in_savepoint(db, result.write)
        else:
            job.outcome = (True, result)

    def _record(self, db: Session, batch: list[tuple[_Job[Any], Deferred]]) -> list[_Job[Any]]:
        """One kind's deferred rows in one call (in a savepoint); the jobs to run again
        alone: those the batch answered `RunAlone`, or all of them if it failed as a whole
        (each then fails, or not, on its own)."""
        ok, outcomes = _in_savepoint(db, lambda: batch[0][1].record(db, [d.item for _, d in batch]))
        if not ok:
            log.warning(
                "write group: a batch of %d failed (%s); each again alone", len(batch), outcomes
            )
            return [job for job, _ in batch]
        again = []
        for (job, _), out in zip(batch, outcomes, strict=True):
            if isinstance(out, RunAlone):
                again.append(job)
            elif isinstance(out, Exception):
                job.outcome = (False, out)
            else:
                job.outcome = (True, out)
        return again

    def _delete(self, key: str) -> None:
        try:
            self.svc.store.delete(key)
        except Exception:  # the storage sweep deletes it later (no blob row names it)
            log.warning("write group: an unused object could not be deleted; swept later")


def _in_savepoint(db: Session, fn: Callable[[], T]) -> tuple[bool, Any]:
    """(True, fn()) with its writes kept, or (False, its error) with its savepoint, its
    hooks and the instances it put in the session rolled back."""
    mark = hooks_mark(db)
    known = set(db.identity_map.keys())
    savepoint = db.begin_nested()
    try:
        result = fn()
        savepoint.commit()
    except Exception as exc:
        if savepoint.is_active:
            savepoint.rollback()
        roll_back_hooks_since(db, mark)
        # The savepoint's rows are gone but not the instances `db.fastpath.inserted` put
        # in the session (it did not see them inserted): SQLite reuses a rolled-back row
        # id, and the next job's insert of that id would clash with them (500 on a quota
        # race).
        for key in set(db.identity_map.keys()) - known:
            stale = db.identity_map.get(key)
            if stale is not None:
                db.expunge(stale)
        return False, exc
    return True, result


# -- set-based recording of a group's rows ----------------------------------------------
# A job's work may check what it must and leave its rows to be written together with the
# other jobs' of its kind (`defer`): a 4 KiB WebDAV PUT recorded alone cost ~2.5 ms of CPU
# in statements per file (its own dedup lookup, folder lock, name check, document, version,
# quota, audit and change-feed rows); a batch writes each kind of row once
# (`recording.record_new_files`). Only in a group's shared transaction (SQLite, several
# jobs): a job alone records alone, as before.

_BATCHING = "documents.write_group.batching"


class RunAlone(Exception):
    """A batch's answer for an item it cannot record with the others (it names the same
    place as an earlier item): the job's work runs again, alone, after the batch."""


@dataclass
class Deferred:
    """What a job's work returns to be recorded with the others of its `kind`: `record`
    takes every such job's `item`, in order, and returns for each its result, its error,
    or `RunAlone`; it writes nothing for an item it fails. One `kind`, one `record`."""

    kind: Any
    record: Callable[[Session, list[Any]], list[Any]]
    item: Any


@dataclass
class Then:
    """What a `checks_first` job's work returns, while `batching`, for the writes its
    checks found it must make: `write()` runs in a savepoint, and its result or error is
    the job's."""

    write: Callable[[], Any]


def batching(db: Session) -> bool:
    """Whether a work running in this transaction may `defer` its rows."""
    return bool(db.info.get(_BATCHING))


def new_key(svc: Services, size: int) -> str:
    """The key for a body of `size` bytes that goes through the group: an inline one
    (kept in the database, `storage.inline`) where the store keeps objects that small."""
    inline = inline_store(svc.store)
    return inline.new_key() if inline is not None and inline.takes(size) else blobs.new_key()


def write_group(svc: Services) -> WriteGroup:
    """The process's write group for these services (built on first use)."""
    group: WriteGroup | None = svc.extensions.get(_KEY)
    if group is None:
        group = svc.extensions[_KEY] = WriteGroup(svc)
    return group


_KEY = "documents.write_group"


_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    """The threads a group's objects are put on where the store has no `put_many`."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(8, thread_name_prefix="write-group-put")
        return _POOL


def put_objects(svc: Services, objects: list[tuple[str, bytes]]) -> list[Exception | None]:
    """Store small objects durably, as fast as the store allows; per object None or its
    error. The local store writes them all and fsyncs each directory once (`put_many`);
    S3 has one PUT per object, so several go at once (each waits for a round trip)."""
    store = svc.store
    put_many = getattr(store, "put_many", None)
    if put_many is not None:
        return list(put_many(objects))

    def put(key_data: tuple[str, bytes]) -> Exception | None:
        try:
            store.put_stream(key_data[0], iter((key_data[1],)))
        except Exception as exc:
            return exc
        return None

    return [put(objects[0])] if len(objects) == 1 else list(_pool().map(put, objects))


def _settle(job: _Job[Any]) -> None:
    """Answer a job with its outcome (on the event loop; once)."""
    if job.future.done() or job.outcome is None:
        return
    ok, value = job.outcome
    if ok:
        job.future.set_result(value)
    else:
        job.future.set_exception(value)


def _fail(jobs: list[_Job[Any]], exc: Exception) -> None:
    """Every job of a transaction that did not commit fails with its error."""
    for job in jobs:
        job.outcome = (False, exc)


def _sqlstate(exc: DBAPIError) -> str | None:
    return getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)


def _retrieve(future: asyncio.Future[Any]) -> None:
    # Every waiter may have gone: the error was still raised to whoever waited for it.
    if not future.cancelled():
        future.exception()
