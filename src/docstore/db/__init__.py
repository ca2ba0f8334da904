"""The transaction boundary of a request or a background task: `Database` (its engines and
session factories) and the hooks a transaction runs when it ends.

Split by concern: `db.columns` (Base and the column types, re-exported here as the schema's
vocabulary), `db.engine` (engines), `db.sql` (SQL text functions), `db.fastpath` (the
shortcuts past the ORM).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from docstore.db.columns import NAMING, Base, IdType, UTCDateTime, utcnow
from docstore.db.engine import SQLITE_LOCK_TIMEOUT, make_engine, make_read_engine

__all__ = [
    "NAMING",
    "READ_ONLY",
    "SQLITE_LOCK_TIMEOUT",
    "Base",
    "Database",
    "IdType",
    "UTCDateTime",
    "after_commit",
    "make_engine",
    "make_read_engine",
    "on_rollback",
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

    def __init__(self, url: str, **engine_kwargs: Any) -> None:
        self.url = url
        self.engine = make_engine(url, **engine_kwargs)
        self.sessionmaker = sessionmaker(self.engine, expire_on_commit=False)
        self.read_engine = make_read_engine(url) or self.engine
        self.read_sessionmaker = sessionmaker(
            self.read_engine, expire_on_commit=False, info={READ_ONLY: True}
        )
        self._session_info: dict[str, Any] = {}

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

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()
        if self.read_engine is not self.engine:
            self.read_engine.dispose()
