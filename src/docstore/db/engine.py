"""Engines: SQLite with WAL, foreign keys and one writer at a time per process (queued on a
lock, then `BEGIN IMMEDIATE`), a read-only SQLite engine beside it, or a PostgreSQL pool."""

from __future__ import annotations

import sqlite3
import threading
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

_WRITER = "docstore.sqlite_writer"
SQLITE_LOCK_TIMEOUT = 30.0


def _driver_begin(conn: Any, statement: str) -> None:
    # Straight to sqlite3: SQLAlchemy's execution context for the BEGIN was 7 % of the
    # event loop's time serving GET /documents/{id} (py-spy; bench/PROFILE.md, session 5).
    conn.connection.driver_connection.execute(statement)


def _sqlite_engine(url: str, *, read_only: bool, **kwargs: Any) -> Engine:
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs)

    @event.listens_for(engine, "connect")
    def _sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy emit BEGIN itself (below) instead of pysqlite's implicit one.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA synchronous=NORMAL")
        if read_only:  # SQLite itself refuses any write on these connections
            cur.execute("PRAGMA query_only=ON")
        cur.close()

    if read_only:

        @event.listens_for(engine, "begin")
        def _sqlite_begin_read(conn: Any) -> None:
            # A deferred BEGIN: in WAL mode a reader sees the last commit before its first
            # read and never waits for the writer, nor the writer for it.
            _driver_begin(conn, "BEGIN")

    return engine


def make_read_engine(url: str) -> Engine | None:
    """For a SQLite file, a second engine whose connections can only read and take no
    write lock; None where the main engine serves reads too (PostgreSQL, in-memory SQLite).
    """
    if not url.startswith("sqlite") or url in ("sqlite://", "sqlite:///:memory:"):
        return None
    return _sqlite_engine(url, read_only=True)


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine; SQLite gets WAL, foreign keys and write-serialising transactions."""
    if url.startswith("sqlite"):
        engine = _sqlite_engine(url, read_only=False, **kwargs)

        writer = threading.Lock()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            # One transaction at a time per process, queued on a lock: SQLite's own busy
            # handler polls with sleeps of 1 to 100 ms, which under 32 concurrent requests
            # put p99 in the seconds. The lock is this connection's until it goes back to
            # the pool (after COMMIT/ROLLBACK has run); other processes on the same file
            # still meet SQLite's lock and busy_timeout.
            if not conn.info.get(_WRITER):
                if not writer.acquire(timeout=SQLITE_LOCK_TIMEOUT):
                    # What SQLite says after busy_timeout; the app answers it with 503.
                    locked = sqlite3.OperationalError("database is locked")
                    raise OperationalError("BEGIN IMMEDIATE", None, locked)
                conn.info[_WRITER] = True
            # IMMEDIATE takes the write lock up front: a read-then-write transaction can
            # then never fail with "database is locked" when it upgrades (SQLite has no
            # row locks, so this is what stands in for SELECT ... FOR UPDATE).
            _driver_begin(conn, "BEGIN IMMEDIATE")

        @event.listens_for(engine, "checkin")
        def _sqlite_checkin(_dbapi_conn: Any, record: Any) -> None:
            if record.info.pop(_WRITER, False):
                writer.release()

        return engine
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **kwargs)


def make_async_read_engine(url: str, pool_size: int) -> AsyncEngine:
    """For PostgreSQL, an asyncio engine (psycopg's async driver) for the audit group
    commit's batches (`Database.write_on_loop`): autocommit, so its transaction is the
    BEGIN/COMMIT it sends itself, and no pre-ping (another round trip per checkout):
    `write_on_loop` tries a BEGIN that meets a dead connection once more instead. No
    overflow: a batch holds its connection for three round trips, so waiting for one is
    short, while overflow connections were opened and closed again under load (a connect
    per request, seen in py-spy). The hot one-statement reads have their own pool,
    straight on psycopg (`db.psycopg_reads`)."""
    return create_async_engine(
        url,
        isolation_level="AUTOCOMMIT",
        pool_size=pool_size,
        max_overflow=0,
        pool_pre_ping=False,
    )
