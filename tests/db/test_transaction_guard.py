"""The transaction guard (on in tests): a task that opens a transaction while it holds one
fails at once, naming the mistake, instead of waiting 30 s for SQLite's write lock."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy import text

from docstore.db import Database, TransactionAlreadyOpen
from docstore.db import engine as db_engine
from tests.fixtures.app import Api


@pytest.fixture
def guarded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Database:
    # Without the guard, the nested transaction below waits for the lock this short (then
    # fails with "database is locked"), so a broken guard fails the test quickly too.
    monkeypatch.setattr(db_engine, "SQLITE_LOCK_TIMEOUT", 1.0)
    database = Database(f"sqlite:///{tmp_path / 'guard.db'}", guard=True)
    with database.transaction() as db:
        db.execute(text("CREATE TABLE t (x INTEGER)"))
    return database


def test_a_second_transaction_in_the_same_task_fails_at_once(guarded: Database) -> None:
    with guarded.transaction() as db:
        db.execute(text("INSERT INTO t VALUES (1)"))
        with pytest.raises(TransactionAlreadyOpen), guarded.transaction() as inner:
            inner.execute(text("INSERT INTO t VALUES (2)"))
        with pytest.raises(TransactionAlreadyOpen), guarded.read_transaction() as reader:
            reader.execute(text("SELECT count(*) FROM t"))
    # The outer transaction was not disturbed, and the task may open one again.
    with guarded.transaction() as db:
        assert db.execute(text("SELECT x FROM t")).scalars().all() == [1]


def test_sequential_transactions_savepoints_and_other_threads_are_fine(
    guarded: Database,
) -> None:
    with guarded.transaction() as db:
        db.execute(text("INSERT INTO t VALUES (1)"))
        db.commit()  # ends this transaction; the next statement begins another in `db`
        db.execute(text("INSERT INTO t VALUES (2)"))
        with db.begin_nested():
            db.execute(text("INSERT INTO t VALUES (3)"))
    seen: list[int] = []

    def reader() -> None:  # another thread holds its own transaction
        with guarded.read_transaction() as other:
            seen.append(other.execute(text("SELECT count(*) FROM t")).scalar_one())

    with guarded.transaction() as db:
        db.execute(text("INSERT INTO t VALUES (4)"))
        thread = threading.Thread(target=reader)
        thread.start()
        thread.join(10)
    assert seen == [3]


def test_requests_each_have_their_own_slot(api: Api) -> None:
    # Concurrent requests run on the same worker threads: none may see another's
    # transaction as its own (every test's requests go through the guard as well).
    alice = api.register()
    folder = alice.mkdir("guarded")
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(5):
                listing = alice.get(f"/api/v1/folders/{folder['id']}/children")
                assert listing.status_code == 200, listing.text
                saved = alice.upload(f"{n}-{i}.txt", b"x", folder=folder["id"])
                assert saved.status_code == 201, saved.text
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    listing = alice.get(f"/api/v1/folders/{folder['id']}/children").json()
    assert len(listing["items"]) == 20
