"""Group commit for the audit entries of read requests.

A read (`GET /documents/{id}` by someone other than the owner) must leave an audit
entry, and before this each read was a write transaction of its own: on SQLite it
queued on the process's write lock, on PostgreSQL it was a commit with a WAL flush. Now
the read runs in a read-only transaction, and its entries go to `GroupCommit.write`, which
answers once they are committed. Entries that arrive while a batch is being written form
the next batch, so under load one transaction carries the entries of every request that
waited for it, and a lone request pays one extra worker-thread hop.

Nothing is answered before its entry is durable: a request whose batch fails gets the
batch's error (503 for an unavailable database), the same as when the entry was written
in the request's own transaction.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable
from functools import partial
from typing import Any

from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from docstore.audit.service import insert_rows
from docstore.db import Database


class GroupCommit:
    """Writes deferred audit entries in batches, one batch at a time per process."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self._loop: asyncio.AbstractEventLoop | None = None
        self._rows: list[dict[str, Any]] = []
        self._work: list[Callable[[Session], None]] = []
        self._batch: asyncio.Future[None] | None = None
        self._flusher: asyncio.Task[None] | None = None

    async def write(
        self, rows: list[dict[str, Any]], work: list[Callable[[Session], None]] | None = None
    ) -> None:
        """Return once `rows` are committed (raise what the batch's transaction raised).
        `work`: small writes a read request leaves for later (a token's last use), run in
        the same batch transaction."""
        if not rows and not work:
            return
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # state belongs to one event loop (tests run several)
            self._loop, self._rows, self._batch, self._flusher = loop, [], None, None
            self._work = []
        self._rows.extend(rows)
        self._work.extend(work or ())
        if self._batch is None:
            self._batch = loop.create_future()
            self._batch.add_done_callback(_retrieve)
        batch = self._batch
        if self._flusher is None:
            # A context of its own: the flusher is no part of the request that started it
            # (the transaction guard keeps one open transaction per request).
            self._flusher = loop.create_task(self._flush(), context=contextvars.Context())
        # A caller that goes away (client disconnect) must not cancel the others' batch.
        await asyncio.shield(batch)

    async def _flush(self) -> None:
        try:
            while self._rows or self._work:
                rows, work, batch = self._rows, self._work, self._batch
                self._rows, self._work, self._batch = [], [], None
                assert batch is not None
                try:
                    if self.database.async_reads:
                        # PostgreSQL: on the loop, over the asyncio pool (no thread hop,
                        # no pre-ping); the batch is 3 round trips, BEGIN/INSERT/COMMIT.
                        await self.database.write_on_loop(partial(_write, rows, work))
                    else:
                        await run_in_threadpool(self._insert, rows, work)
                except asyncio.CancelledError:
                    batch.cancel()
                    raise
                except Exception as exc:
                    batch.set_exception(exc)
                else:
                    batch.set_result(None)
        finally:
            self._flusher = None

    def _insert(self, rows: list[dict[str, Any]], work: list[Callable[[Session], None]]) -> None:
        with self.database.transaction() as db:
            _write(rows, work, db)


def _write(rows: list[dict[str, Any]], work: list[Callable[[Session], None]], db: Session) -> None:
    insert_rows(db, rows)
    for fn in work:
        fn(db)


def _retrieve(batch: asyncio.Future[None]) -> None:
    # Every waiter may have gone: the error was still raised to whoever waited for it.
    if not batch.cancelled():
        batch.exception()
