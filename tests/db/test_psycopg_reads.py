"""Database.fetch_first on PostgreSQL, straight on psycopg (db.psycopg_reads): rows as
SQLAlchemy's own execution returns them, a dead pooled connection dropped and the read
retried, errors raised as SQLAlchemy's, a cancelled read leaving no busy connection, and
the connections closed when the app shuts down."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import timedelta

import psycopg
import pytest
import sqlalchemy.exc
from sqlalchemy import func, select

from docstore.db import Database, utcnow
from tests.db.test_core_rows import _INSERT, _SELECT, _values

pytestmark = pytest.mark.postgres

_PID = select(func.pg_backend_pid().label("pid"))
_SLOW_PID = select(func.pg_backend_pid().label("pid"), func.pg_sleep(0.3).label("slept"))


@pytest.fixture
def database(pg_url: str) -> Iterator[Database]:
    db = Database(pg_url)
    yield db
    db.dispose()


def _admin(database: Database) -> psycopg.Connection[tuple[object, ...]]:
    dsn = database.url.replace("postgresql+psycopg://", "postgresql://")
    return psycopg.connect(dsn, autocommit=True, connect_timeout=5)


def _alive(database: Database, pids: set[int]) -> set[int]:
    with _admin(database) as conn:
        rows = conn.execute("SELECT pid FROM pg_stat_activity").fetchall()
    return pids & {int(pid) for (pid,) in rows}  # type: ignore[call-overload]


def test_rows_match_sqlalchemys_own_execution(database: Database) -> None:
    with database.transaction() as db:
        for i, key in enumerate(("a", "b", "c")):
            db.connection().execute(_INSERT, {**_values(key), "verified": i != 1})
    params = {"after": utcnow() - timedelta(minutes=5), "state": "active", "limit": 2}
    with database.engine.connect() as conn:
        expected = conn.execute(_SELECT, params).first()
    assert expected is not None

    async def read() -> tuple[object, object]:
        mine = await database.fetch_first(_SELECT, params)
        none = await database.fetch_first(_SELECT, {**params, "state": "gone"})
        return mine, none

    mine, none = asyncio.run(read())
    assert none is None
    assert tuple(mine) == tuple(expected)  # type: ignore[arg-type]
    assert [type(v) for v in mine] == [type(v) for v in expected]  # type: ignore[attr-defined]
    assert mine._mapping == dict(expected._mapping)  # type: ignore[attr-defined]
    assert mine.created_at.tzinfo is not None and mine.storage_key == "a"  # type: ignore[attr-defined]


def test_dead_pooled_connections_are_dropped_and_the_read_retried(database: Database) -> None:
    async def run() -> tuple[set[int], int]:
        # Two reads at once: two pooled connections, both then killed as by a restart.
        first = await asyncio.gather(*(database.fetch_first(_SLOW_PID, {}) for _ in range(2)))
        pids = {row.pid for row in first}
        assert len(pids) == 2
        with _admin(database) as conn:
            for pid in pids:
                conn.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,))
        # The first try meets a dead connection; the retry must not take the other one.
        again = await database.fetch_first(_PID, {})
        return pids, again.pid

    pids, pid = asyncio.run(run())
    assert pid not in pids


def test_a_database_that_does_not_answer_raises_sqlalchemys_operational_error() -> None:
    database = Database("postgresql+psycopg://postgres@127.0.0.1:9/nowhere")  # nothing listens
    try:
        with pytest.raises(sqlalchemy.exc.OperationalError):
            asyncio.run(database.fetch_first(_PID, {}))
    finally:
        database.dispose()


def test_a_cancelled_read_leaves_no_busy_connection(database: Database) -> None:
    slow = select(func.pg_sleep(30).label("slept"))

    async def run() -> int:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(database.fetch_first(slow, {}), 0.2)
        row = await database.fetch_first(_PID, {})  # answered now, not after the 30 s
        return int(row.pid)

    started = time.monotonic()
    asyncio.run(run())
    assert time.monotonic() - started < 15


def test_the_connections_close_with_the_app(database: Database) -> None:
    async def run() -> set[int]:
        rows = await asyncio.gather(*(database.fetch_first(_SLOW_PID, {}) for _ in range(3)))
        await database.dispose_async()  # what the app's lifespan does at shutdown
        return {row.pid for row in rows}

    pids = asyncio.run(run())
    assert len(pids) == 3
    for _ in range(100):  # a backend leaves pg_stat_activity shortly after its client
        if not _alive(database, pids):
            break
        time.sleep(0.05)
    assert not _alive(database, pids)
