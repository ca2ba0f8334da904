"""Read requests: a read-only transaction, and audit entries written by the group commit
before the answer goes out (audit/group_commit.py)."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, insert, select, text
from sqlalchemy.exc import OperationalError

from docstore.audit.group_commit import GroupCommit
from docstore.audit.models import AuditLog
from docstore.audit.service import Action, record
from docstore.context import Actor
from docstore.db import Database, utcnow
from docstore.documents.models import Document
from tests.audit.helpers import services
from tests.fixtures.app import Api, make_settings
from tests.fixtures.databases import executed

ROW_KEYS = ("user_id", "document_id", "folder_id", "share_id", "owner_id", "action")


def _row(n: int, **extra: Any) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(ROW_KEYS)
    row.update(action=Action.VIEW.value, document_id=n, ip_address="127.0.0.1")
    row.update(user_agent=None, timestamp=utcnow(), **extra)
    return row


def _documents_logged(database: Database) -> list[int]:
    with database.transaction() as db:
        return sorted(db.scalars(select(AuditLog.document_id)))


def test_concurrent_entries_commit_together_before_anyone_returns(database: Database) -> None:
    writer = GroupCommit(database)
    sent = executed(database)
    seen_after_return: list[tuple[int, list[int]]] = []

    async def one(n: int) -> None:
        await writer.write([_row(n)])
        # Returned: the entry is committed and any other transaction sees it.
        seen_after_return.append((n, _documents_logged(database)))

    async def main() -> None:
        await asyncio.gather(*(one(n) for n in range(1, 21)))

    asyncio.run(main())
    assert _documents_logged(database) == list(range(1, 21))
    assert len(seen_after_return) == 20
    assert all(n in seen for n, seen in seen_after_return)
    # 20 waiting requests, far fewer statements and transactions (here: one batch).
    inserts = [st for st in sent if st.upper().startswith("INSERT INTO AUDIT_LOG")]
    assert 1 <= len(inserts) <= 2


def test_entries_with_and_without_details_keep_their_shape(database: Database) -> None:
    writer = GroupCommit(database)
    asyncio.run(writer.write([_row(1), _row(2, details={"version_id": 7}), _row(3)]))
    with database.transaction() as db:
        got = {e.document_id: e.details for e in db.scalars(select(AuditLog))}
    assert got == {1: None, 2: {"version_id": 7}, 3: None}


def test_a_failed_batch_fails_every_waiter_and_the_next_batch_is_written(
    database: Database,
) -> None:
    writer = GroupCommit(database)

    async def main() -> list[Any]:
        # action is NOT NULL: the database refuses the batch, so both waiters must fail.
        first = writer.write([_row(1)])
        bad = writer.write([_row(2, action=None)])
        results = await asyncio.gather(first, bad, return_exceptions=True)
        await writer.write([_row(3)])
        return results

    results = asyncio.run(main())
    assert all(isinstance(r, Exception) for r in results), results
    assert _documents_logged(database) == [3]


def test_a_waiter_that_goes_away_does_not_cancel_the_batch(database: Database) -> None:
    writer = GroupCommit(database)

    async def main() -> None:
        gone = asyncio.ensure_future(writer.write([_row(1)]))
        stays = asyncio.ensure_future(writer.write([_row(2)]))
        await asyncio.sleep(0)  # both joined the batch
        gone.cancel()
        await stays
        with pytest.raises(asyncio.CancelledError):
            await gone

    asyncio.run(main())
    assert _documents_logged(database) == [1, 2]


def test_a_sqlite_read_transaction_cannot_write(sqlite_url: str) -> None:
    database = Database(sqlite_url)
    try:
        with pytest.raises(OperationalError, match="readonly"), database.read_transaction() as db:
            db.execute(insert(AuditLog.__table__).values(_row(1)))
        assert _documents_logged(database) == []
    finally:
        database.dispose()


def test_record_in_a_read_transaction_defers_the_entry(database: Database) -> None:
    with database.read_transaction() as db:
        record(db, Actor(user=None, ip="127.0.0.1"), Action.VIEW, document_id=5)
        kept = list(db.info["docstore.audit.deferred"])
    assert [r["document_id"] for r in kept] == [5]
    assert _documents_logged(database) == []


def test_sqlite_reads_do_not_wait_for_a_writer(sqlite_url: str) -> None:
    """A read runs (on the event loop, in the server) while another request holds the
    write lock, and sees the last commit, not the writer's uncommitted rows."""
    database = Database(sqlite_url)
    holding, release = threading.Event(), threading.Event()

    def writer() -> None:
        with database.transaction() as db:
            db.execute(insert(AuditLog.__table__).values(_row(9)))
            holding.set()
            release.wait(10)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        assert holding.wait(10)
        with database.read_transaction() as db:
            assert db.scalar(select(func.count()).select_from(AuditLog)) == 0
    finally:
        release.set()
        thread.join()
        database.dispose()


def _reader_gets_document(api: Api) -> tuple[Any, Any, int]:
    owner, reader = api.register(), api.register()
    up = owner.upload("a.txt", b"hello\n")
    assert up.status_code == 201, up.text
    doc = up.json()
    r = owner.post(
        "/api/v1/shares",
        json={"document_id": doc["id"], "permission": "VIEW", "email": reader.info["email"]},
    )
    assert r.status_code == 201, r.text
    return owner, reader, doc["id"]


def test_get_by_a_reader_is_logged_before_the_answer(api: Api) -> None:
    _, reader, doc_id = _reader_gets_document(api)
    for n in range(1, 4):
        assert reader.get(f"/api/v1/documents/{doc_id}").status_code == 200
        with services(api).database.transaction() as db:
            views = db.scalar(
                select(func.count())
                .select_from(AuditLog)
                .where(AuditLog.action == "VIEW", AuditLog.document_id == doc_id)
            )
        assert views == n


def test_get_whose_entry_cannot_be_written_is_refused(tmp_path: Path, sqlite_url: str) -> None:
    """No entry, no answer: the reader gets 503 and not the document."""
    from fastapi.testclient import TestClient

    from docstore.app import create_app
    from tests.fixtures.app import BASE

    with TestClient(create_app(make_settings(tmp_path, sqlite_url)), base_url=BASE) as client:
        api = Api(client)
        _, reader, doc_id = _reader_gets_document(api)
        with services(api).database.transaction() as db:
            db.execute(text("ALTER TABLE audit_log RENAME TO audit_log_away"))
        r = reader.get(f"/api/v1/documents/{doc_id}")
        assert r.status_code == 503, r.text
        assert "a.txt" not in r.text
        with services(api).database.transaction() as db:
            db.execute(text("ALTER TABLE audit_log_away RENAME TO audit_log"))
        assert reader.get(f"/api/v1/documents/{doc_id}").status_code == 200
        with services(api).database.transaction() as db:
            assert db.get(Document, doc_id) is not None


def test_reads_run_on_the_loop_only_on_embedded_sqlite(
    tmp_path: Path, database_url: str, redis_url: str
) -> None:
    """The event loop may only run reads that never leave the process: SQLite with the
    in-process cache. With Redis (or on PostgreSQL) the read goes to a worker thread, and
    still answers and logs the same."""
    from fastapi.testclient import TestClient

    from docstore.app import create_app
    from tests.fixtures.app import BASE

    for redis in (None, redis_url):
        settings = make_settings(tmp_path / str(bool(redis)), database_url, redis_url=redis)
        with TestClient(create_app(settings), base_url=BASE) as client:
            api = Api(client)
            svc = services(api)
            assert svc.inline_reads == (redis is None and not svc.database.is_postgres)
            _, reader, doc_id = _reader_gets_document(api)
            assert reader.get(f"/api/v1/documents/{doc_id}").status_code == 200
            with svc.database.transaction() as db:
                views = db.scalar(
                    select(func.count())
                    .select_from(AuditLog)
                    .where(AuditLog.action == "VIEW", AuditLog.document_id == doc_id)
                )
            assert views == 1
