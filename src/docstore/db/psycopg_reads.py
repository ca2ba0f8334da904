"""The hot one-statement reads on PostgreSQL, straight on psycopg's AsyncConnection.

Why: with the read down to one statement (documents.service.get_in_one_statement), a GIL
profile of `GET /documents/{id}` at 32 connections still put a quarter of the endpoint's
samples in SQLAlchemy's asyncio layer around psycopg (the greenlet hops, the execution
context, the pool's checkout and reset, the result object) rather than in psycopg itself
(bench/PROFILE.md, "Reads on PostgreSQL straight on psycopg"). Here the statement is
compiled once by SQLAlchemy (`db.fastpath.Plan`: the same SQL, bind and result processors
as SQLAlchemy's own execution) with PostgreSQL's own `$1` placeholders, which psycopg's raw
cursor sends as they are (psycopg parses a `%(name)s` query of more than 4 KiB, as this
one is, again at every execution: a tenth of the request in the next profile), prepared on
each connection, and its row converted by the same processors.
Everything else on PostgreSQL (writes, the audit group commit, multi-statement reads)
still goes through SQLAlchemy.
"""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
from psycopg import AsyncRawCursor, pq
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.exc import DBAPIError, StatementError

from docstore.db.fastpath import plan_for

_IDLE = pq.TransactionStatus.IDLE


class PsycopgReads:
    """A small pool of autocommit psycopg connections of one event loop, and the one
    thing it does: `fetch_first`. At most `size` connections, opened when first needed
    and reused last-in first-out; no overflow and no pre-ping (a dead one is found by the
    read itself, which is then run once more)."""

    def __init__(self, url: str, dialect: Dialect, size: int) -> None:
        self.dialect = dialect  # the engine's (psycopg): connects, translates errors
        # The same dialect with `$1` placeholders: compiles and converts.
        dialect_class: Any = type(dialect)  # a concrete dialect: takes `paramstyle`
        self.compiler: Dialect = dialect_class(paramstyle="numeric_dollar")
        self._cargs, self._cparams = dialect.create_connect_args(make_url(url))
        self._idle: list[psycopg.AsyncConnection[Any]] = []
        self._slots = asyncio.Semaphore(size)
        self._closed = False

    async def fetch_first(self, statement: Any, params: dict[str, Any]) -> Any:
        """The first row of `statement` (a SELECT built once) or None, as
        `db.fastpath.rows` returns it. A psycopg error is raised as SQLAlchemy's (an
        OperationalError is a 503, as everywhere). A connection found dead (the server
        restarted) is dropped with every idle one, and the read runs once more on a fresh
        connection: a read may be retried."""
        plan = plan_for(statement, self.compiler)
        args = plan.args(params)
        for attempt in (1, 2):
            async with self._slots:
                conn = await self._checkout(plan.sql)
                try:
                    cursor = await conn.execute(plan.sql, args, prepare=True)
                    raw = await cursor.fetchone()
                except psycopg.Error as exc:
                    if attempt == 1 and conn.closed:
                        self._drop_idle()  # from the same server: as dead as this one
                        continue
                    raise _sqlalchemy_error(exc, plan.sql, self.dialect, conn.closed) from exc
                finally:
                    self._checkin(conn)
            return None if raw is None else plan.row(raw)
        raise AssertionError("unreachable")

    async def _checkout(self, sql: str) -> psycopg.AsyncConnection[Any]:
        if self._idle:
            return self._idle.pop()
        try:
            return await psycopg.AsyncConnection.connect(
                *self._cargs, autocommit=True, cursor_factory=AsyncRawCursor, **self._cparams
            )
        except psycopg.Error as exc:
            raise _sqlalchemy_error(exc, sql, self.dialect, False) from exc

    def _checkin(self, conn: psycopg.AsyncConnection[Any]) -> None:
        # A connection left mid-query (a cancelled request) or broken is not reused.
        if not (self._closed or conn.closed) and conn.info.transaction_status == _IDLE:
            self._idle.append(conn)
        else:
            _finish(conn)

    def _drop_idle(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            _finish(conn)

    def close(self) -> None:
        """Close the idle connections (at shutdown, or when the loop that owns them has
        gone); one still checked out is closed when it comes back."""
        self._closed = True
        self._drop_idle()


def _finish(conn: psycopg.AsyncConnection[Any]) -> None:
    # AsyncConnection.close() only finishes the libpq connection, without awaiting
    # anything: done directly, it also works where the connection's loop is gone.
    conn.pgconn.finish()


def _sqlalchemy_error(exc: psycopg.Error, sql: str, dialect: Dialect, dead: bool) -> StatementError:
    """`exc` as SQLAlchemy raises it (OperationalError, IntegrityError...), parameters
    hidden (a token's digest is one)."""
    return DBAPIError.instance(
        sql,
        None,
        exc,
        psycopg.Error,
        hide_parameters=True,
        connection_invalidated=dead,
        dialect=dialect,
    )
