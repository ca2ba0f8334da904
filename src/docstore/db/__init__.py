"""The transaction boundary of a request or a background task: `Database` (its engines and
session factories) and the hooks a transaction runs when it ends.

Split by concern: `db.columns` (Base and the column types, re-exported here as the schema's
vocabulary), `db.engine` (engines), `db.sql` (SQL text functions), `db.fastpath` (the
shortcuts past the ORM).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from sqlalchemy import event
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import Session, SessionTransaction, sessionmaker

from docstore.db.columns import NAMING, Base, IdType, UTCDateTime, utcnow
from docstore.db.engine import (
    SQLITE_LOCK_TIMEOUT,
    make_async_read_engine,
    make_engine,
    make_read_engine,
)
from docstore.db.psycopg_reads import PsycopgReads

__all__ = [
    "NAMING",
    "READ_ONLY",
    "SQLITE_LOCK_TIMEOUT",
    "TRANSACTION_GUARD_ENV",
    "Base",
    "Database",
    "IdType",
    "TransactionAlreadyOpen",
    "UTCDateTime",
    "after_commit",
    "hooks_mark",
    "make_engine",
    "make_read_engine",
    "on_rollback",
    "roll_back_hooks_since",
    "task_scope",
    "utcnow",
]

log = logging.getLogger(__name__)

_ON_ROLLBACK = "docstore.on_rollback"
_AFTER_COMMIT = "docstore.after_commit"
# session.info key: set on sessions of `Database.read_transaction`.
READ_ONLY = "docstore.read_only"


def on_rollback(session: Session, fn: Callable[[], None]) -> None:
    """Run `fn` if this session's transaction rolls back (or its commit fails)."""
    session.info.setdefault(_ON_ROLLBACK, []).append(fn)


def after_commit(session: Session, fn: Callable[[], None]) -> None:
    """Run `fn` once this session's transaction has committed."""
    session.info.setdefault(_AFTER_COMMIT, []).append(fn)


def hooks_mark(session: Session) -> tuple[int, int]:
    """Where the session's hook lists stand now, for `roll_back_hooks_since`."""
    return (
        len(session.info.setdefault(_ON_ROLLBACK, [])),
        len(session.info.setdefault(_AFTER_COMMIT, [])),
    )


def roll_back_hooks_since(session: Session, mark: tuple[int, int]) -> None:
    """A savepoint since `mark` rolled back: run the `on_rollback` hooks registered since
    then and forget both kinds (its `after_commit` hooks must not run when the enclosing
    transaction commits). For several units of work sharing one transaction, each in a
    savepoint (documents.write_group)."""
    undo: list[Callable[[], None]] = session.info[_ON_ROLLBACK][mark[0] :]
    del session.info[_ON_ROLLBACK][mark[0] :]
    del session.info[_AFTER_COMMIT][mark[1] :]
    for fn in undo:
        try:
            fn()
        except Exception:  # best effort, as _run_hooks
            log.exception("transaction hook on_rollback failed")


# -- the transaction guard -------------------------------------------------------------
# The rule (docs/DEVELOPING.md): a task holds at most one transaction at a time. On SQLite
# a second one waits 30 s for the write lock its own first one holds, then fails; with the
# guard on (tests set DOCSTORE_TRANSACTION_GUARD=1) it raises at once, naming the mistake.

TRANSACTION_GUARD_ENV = "DOCSTORE_TRANSACTION_GUARD"


class TransactionAlreadyOpen(RuntimeError):
    """A task began a transaction while it still held one (a bug: see DEVELOPING.md)."""


class _Holder:
    """The session whose transaction a task holds, if any."""

    __slots__ = ("session",)

    def __init__(self) -> None:
        self.session: Session | None = None


# One holder per request, shared with the worker threads the request hops through (they
# run in copies of its context, which point at the same holder); elsewhere, one per thread.
_TASK_HOLDER: ContextVar[_Holder | None] = ContextVar("docstore_transaction", default=None)
_THREAD = threading.local()


def task_scope() -> None:
    """Start a task of its own (a request): from here on, it and the worker threads it
    calls hold their transactions in one place, apart from every other task's."""
    _TASK_HOLDER.set(_Holder())


def _holder() -> _Holder:
    holder = _TASK_HOLDER.get()
    if holder is None:
        holder = getattr(_THREAD, "holder", None)
        if holder is None:
            holder = _THREAD.holder = _Holder()
    return holder


def _guard(factory: sessionmaker[Session]) -> None:
    @event.listens_for(factory, "after_transaction_create")
    def _began(session: Session, transaction: SessionTransaction) -> None:
        if transaction.parent is not None:  # a savepoint or a subtransaction
            return
        holder = _holder()
        if holder.session is not None and holder.session is not session:
            raise TransactionAlreadyOpen(
                "this task already holds a transaction: on SQLite the new one would wait "
                "for the write lock the first one holds (docs/DEVELOPING.md, transactions)"
            )
        holder.session = session

    @event.listens_for(factory, "after_transaction_end")
    def _ended(session: Session, transaction: SessionTransaction) -> None:
        if transaction.parent is None:
            holder = _holder()
            if holder.session is session:
                holder.session = None


def _run_hooks(session: Session, name: str) -> None:
    hooks: list[Callable[[], None]] = session.info.pop(name, [])
    session.info.pop(_AFTER_COMMIT if name == _ON_ROLLBACK else _ON_ROLLBACK, None)
    for fn in hooks:
        try:
            fn()
        except Exception:  # best effort: the janitor catches what a hook could not do
            log.exception("transaction hook %s failed", name)


class Database:
    """One engine and its session factory; built by the app factory, never at import."""

    def __init__(self, url: str, *, guard: bool | None = None, **engine_kwargs: Any) -> None:
        self.url = url
        self.engine = make_engine(url, **engine_kwargs)
        self.sessionmaker = sessionmaker(self.engine, expire_on_commit=False)
        self.read_engine = make_read_engine(url) or self.engine
        self.read_sessionmaker = sessionmaker(
            self.read_engine, expire_on_commit=False, info={READ_ONLY: True}
        )
        self._session_info: dict[str, Any] = {}
        # PostgreSQL, each of the running loop: the audit group commit's asyncio engine
        # (`write_on_loop`) and the hot reads' psycopg pool (`fetch_first`), as large.
        self._async_pool_size = int(engine_kwargs.get("pool_size", 10))
        self._async: tuple[asyncio.AbstractEventLoop, AsyncEngine] | None = None
        self._reads: tuple[asyncio.AbstractEventLoop, PsycopgReads] | None = None
        if guard is None:
            guard = os.environ.get(TRANSACTION_GUARD_ENV, "") not in ("", "0")
        if guard:
            _guard(self.sessionmaker)
            _guard(self.read_sessionmaker)

    def configure_sessions(self, info: dict[str, Any]) -> None:
        """Put `info` (besides what earlier calls put) into every session either session
        factory hands out."""
        self._session_info.update(info)
        self.sessionmaker.configure(info=dict(self._session_info))
        self.read_sessionmaker.configure(info={**self._session_info, READ_ONLY: True})

    @property
    def local_reads(self) -> bool:
        """Whether reads are calls into this process's SQLite library (a file with its own
        read engine), never a network round trip."""
        return self.read_engine is not self.engine

    @property
    def is_postgres(self) -> bool:
        """Whether the backend is PostgreSQL (row locks, advisory locks)."""
        return self.engine.dialect.name == "postgresql"

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session that commits when the block succeeds and rolls back on any error.

        Work outside the database registers hooks: `on_rollback(session, fn)` undoes a
        side effect (e.g. deletes bytes just written) when the transaction does not commit;
        `after_commit(session, fn)` runs once it has.
        """
        yield from self._run(self.sessionmaker())

    @contextmanager
    def read_transaction(self) -> Iterator[Session]:
        """A transaction for a request that only reads: on SQLite it neither takes nor
        waits for the write lock, and the database refuses writes in it. Audit entries
        recorded in it are kept in `session.info` for the caller to write (see
        audit.service.record and audit.group_commit).
        """
        yield from self._run(self.read_sessionmaker())

    def _run(self, session: Session) -> Iterator[Session]:
        session.info[_ON_ROLLBACK] = []
        session.info[_AFTER_COMMIT] = []
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            _run_hooks(session, _ON_ROLLBACK)
            raise
        else:
            _run_hooks(session, _AFTER_COMMIT)
        finally:
            session.close()

    @property
    def async_reads(self) -> bool:
        """Whether one-statement reads run on the event loop (`fetch_first`): PostgreSQL."""
        return self.is_postgres

    def _async_engine(self) -> AsyncEngine:
        loop = asyncio.get_running_loop()
        if self._async is None or self._async[0] is not loop:
            # Pooled connections belong to the loop that opened them (tests run several).
            if self._async is not None:
                self._async[1].sync_engine.dispose(close=False)
            self._async = (loop, make_async_read_engine(self.url, self._async_pool_size))
        return self._async[1]

    def owns(self, engine: Any) -> bool:
        """Whether `engine` is one of this database's (the asyncio pool's included)."""
        mine = {self.engine, self.read_engine}
        if self._async is not None:
            mine.add(self._async[1].sync_engine)
        return engine in mine

    async def fetch_first(self, statement: Any, params: dict[str, Any]) -> Any:
        """The first row of a one-statement read on PostgreSQL, on the event loop: no
        worker-thread hop, no transaction around it, one round trip. For the hot reads
        that authenticate, check and fetch in a single statement (documents.service
        `get_in_one_statement`); a read that needs several statements or writes anything
        takes `transaction` / `read_transaction` as usual.

        It runs straight on psycopg, past SQLAlchemy's execution (`db.psycopg_reads`: why,
        there); the row reads as `db.fastpath.rows`'. A pooled connection found dead (the
        server restarted) is dropped with the idle ones, and the read runs once more on a
        fresh one."""
        return await self._psycopg_reads().fetch_first(statement, params)

    def _psycopg_reads(self) -> PsycopgReads:
        loop = asyncio.get_running_loop()
        if self._reads is None or self._reads[0] is not loop:
            # Connections belong to the loop that opened them (tests run several).
            if self._reads is not None:
                self._reads[1].close()
            pool = PsycopgReads(self.url, self.engine.dialect, self._async_pool_size)
            self._reads = (loop, pool)
        return self._reads[1]

    async def write_on_loop(self, fn: Callable[[Session], None]) -> None:
        """`fn(session)` in one transaction over the asyncio pool (PostgreSQL), on the event
        loop: BEGIN, `fn`'s statements, COMMIT; no worker-thread hop and no pre-ping. For the
        audit group commit, which writes one batch at a time and whose every waiter is
        answered only once the COMMIT has returned. Only a BEGIN that finds its pooled
        connection dead (the server restarted) is tried again, on a fresh connection:
        nothing of the transaction can have happened yet. After that nothing is retried: a
        write whose COMMIT failed may have committed, and the caller reports the error."""
        for attempt in (1, 2):
            async with self._async_engine().connect() as conn:
                try:
                    await conn.exec_driver_sql("BEGIN")  # the pool's connections autocommit
                except DBAPIError as exc:
                    if attempt == 1 and exc.connection_invalidated:
                        continue
                    raise
                try:
                    await conn.run_sync(_with_session, fn)
                    await conn.exec_driver_sql("COMMIT")
                except BaseException:
                    with contextlib.suppress(Exception):
                        await conn.exec_driver_sql("ROLLBACK")
                    raise
                return

    async def dispose_async(self) -> None:
        """Close the hot-read pools of the running loop (at the end of the app's lifespan)."""
        reads, self._reads = self._reads, None
        if reads is not None:
            reads[1].close()
        found, self._async = self._async, None
        if found is not None:
            if found[0] is asyncio.get_running_loop():
                await found[1].dispose()
            else:
                found[1].sync_engine.dispose(close=False)

    def dispose(self) -> None:
        """Close every pooled connection."""
        if self._reads is not None:
            self._reads[1].close()
            self._reads = None
        if self._async is not None:  # its loop may be gone: let its connections go
            self._async[1].sync_engine.dispose(close=False)
            self._async = None
        self.engine.dispose()
        if self.read_engine is not self.engine:
            self.read_engine.dispose()


def _with_session(conn: Any, fn: Callable[[Session], None]) -> None:
    """`fn` with a session on `conn`'s transaction (which the caller ends)."""
    with Session(bind=conn) as session:
        fn(session)
