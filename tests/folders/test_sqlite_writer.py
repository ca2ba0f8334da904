"""SQLite in one process: transactions queue on the engine's writer lock, which every way a
transaction can end gives back; and listing queries use the live-name index."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from docstore.db import Database
from docstore.db import engine as dbmod
from docstore.folders import repository


@pytest.fixture
def database(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Database]:
    # A leaked lock then shows as "database is locked" within a second, not after 30.
    monkeypatch.setattr(dbmod, "SQLITE_LOCK_TIMEOUT", 1.0)
    database = Database(sqlite_url)
    yield database
    database.dispose()


def in_thread(fn: Callable[[], object]) -> BaseException | None:
    """Run `fn` in another thread (the lock is not reentrant by thread); what it raised."""
    raised: list[BaseException] = []

    def run() -> None:
        try:
            fn()
        except BaseException as exc:
            raised.append(exc)

    t = threading.Thread(target=run)
    t.start()
    t.join(30)
    assert not t.is_alive()
    return raised[0] if raised else None


def write(database: Database) -> None:
    with database.transaction() as session:
        session.execute(text("CREATE TABLE IF NOT EXISTS t (x INTEGER)"))
        session.execute(text("INSERT INTO t VALUES (1)"))


def test_every_way_a_transaction_ends_gives_the_lock_back(database: Database) -> None:
    write(database)  # commit

    class Boom(Exception):
        pass

    def insert_then_fail() -> None:
        with database.transaction() as session:
            session.execute(text("INSERT INTO t VALUES (2)"))
            raise Boom()

    with pytest.raises(Boom):  # rollback on an error
        insert_then_fail()

    with database.engine.connect() as conn:  # commit-as-you-go on one connection
        conn.execute(text("INSERT INTO t VALUES (3)"))
        conn.commit()
        conn.execute(text("INSERT INTO t VALUES (4)"))
        conn.commit()  # the same connection begins again without waiting on itself

    with database.engine.connect() as conn:  # a connection invalidated mid-transaction
        conn.execute(text("INSERT INTO t VALUES (5)"))
        conn.invalidate()

    # Had any of these kept the lock, this would fail after 1 s with "database is locked".
    assert in_thread(lambda: write(database)) is None
    with database.transaction() as session:
        assert sorted(session.execute(text("SELECT x FROM t")).scalars()) == [1, 1, 3, 4]


def test_a_second_transaction_waits_for_the_first_and_gives_up_as_database_locked(
    database: Database,
) -> None:
    write(database)
    with database.transaction() as session:
        session.execute(text("INSERT INTO t VALUES (7)"))
        # Another thread cannot start a transaction while this one is open...
        raised = in_thread(lambda: write(database))
        assert isinstance(raised, OperationalError)
        assert "database is locked" in str(raised)  # the app answers 503 to this
    # ...and can once it has committed.
    assert in_thread(lambda: write(database)) is None


def test_listing_queries_seek_the_live_name_index(database: Database) -> None:
    """`is_deleted IS 0` (what `.is_(False)` renders) made SQLite ignore the partial
    live-name index and sort the whole folder for every page."""
    cursor = {"p": "d", "v": "m.txt", "i": 5, "o": "name"}
    stmt, params = repository.child_documents(1, "name", cursor, 1001)
    compiled = stmt.compile(database.engine)
    with database.engine.connect() as conn:
        plan = conn.exec_driver_sql(
            f"EXPLAIN QUERY PLAN {compiled}",
            tuple(compiled.construct_params(params)[name] for name in compiled.positiontup or ()),
        ).all()
    steps = " | ".join(str(row[-1]) for row in plan)
    assert "USING INDEX uq_documents_live_name (folder_id=? AND name>?)" in steps, steps
    assert "TEMP B-TREE" not in steps, steps
