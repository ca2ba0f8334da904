"""The audit group commit on PostgreSQL, through the real server: reads of a shared
document answered by one statement on the event loop (documents.service
`get_in_one_statement`) leave exactly one VIEW entry each, the chain over them verifies,
and a `kill -9` right after the answers loses none of the answered reads' entries."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from docstore.audit.models import AuditLog
from docstore.audit.sealing import seal_until_done
from docstore.audit.verification import verify
from docstore.db import Database
from tests.audit.helpers import AUDIT_KEY, SIGNER
from tests.faults.helpers import API, Client
from tests.fixtures.server import ServerProcess, start_server

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

READS = 240
CONCURRENCY = 24


@pytest.fixture
def pg_server(tmp_path: Path, pg_url: str, redis_url: str) -> Iterator[ServerProcess]:
    """One real server on PostgreSQL + Redis; the tests' audit key, no background jobs (the
    test seals the chain itself, with the same key)."""
    env = {
        "DOCSTORE_REDIS_URL": redis_url,
        "DOCSTORE_AUDIT_KEY": AUDIT_KEY,
        "DOCSTORE_RUN_JOBS_IN_SERVER": "false",
    }
    srv = start_server(tmp_path, pg_url, env)
    yield srv
    srv.stop()


def _shared_document(base: str) -> tuple[Client, int]:
    """A reader and the id of a document its owner shared with them, ten folders up."""
    owner, reader = Client.register(base, "owner"), Client.register(base, "reader")
    parent = top = None
    for depth in range(10):
        r = owner.post(f"{API}/folders", json={"name": f"level-{depth}", "parent_id": parent})
        assert r.status_code == 201, r.text
        parent = r.json()["id"]
        top = top or parent
    up = owner.put_file("deep.txt", b"ten levels down\n", parent)
    assert up.status_code == 201, up.text
    r = owner.post(
        f"{API}/shares",
        json={"folder_id": top, "permission": "VIEW", "email": reader_email(reader)},
    )
    assert r.status_code == 201, r.text
    return reader, int(up.json()["id"])


def reader_email(reader: Client) -> str:
    r = reader.get(f"{API}/users/me")
    assert r.status_code == 200, r.text
    return str(r.json()["email"])


def _read_concurrently(reader: Client, doc_id: int) -> list[int]:
    """READS GETs of the document from CONCURRENCY threads; their status codes."""

    def one(_: int) -> int:
        with httpx.Client(base_url=reader.base, timeout=60, trust_env=False) as http:
            r = http.get(f"{API}/documents/{doc_id}", headers=reader.headers)
            assert r.status_code != 200 or r.json()["permission"] == "VIEW", r.text
            return r.status_code

    with ThreadPoolExecutor(CONCURRENCY) as pool:
        return list(pool.map(one, range(READS)))


def _views(database: Database, doc_id: int, user_id: int) -> int:
    with database.transaction() as db:
        return int(
            db.scalar(
                select(func.count())
                .select_from(AuditLog)
                .where(
                    AuditLog.action == "VIEW",
                    AuditLog.document_id == doc_id,
                    AuditLog.user_id == user_id,
                )
            )
            or 0
        )


def test_concurrent_reads_leave_exactly_one_entry_each_and_the_chain_verifies(
    pg_server: ServerProcess, pg_url: str
) -> None:
    reader, doc_id = _shared_document(pg_server.url)
    codes = _read_concurrently(reader, doc_id)
    assert codes == [200] * READS
    database = Database(pg_url)
    try:
        # Every answer waited for its entry: all are there the moment the last one returned.
        assert _views(database, doc_id, reader.user_id) == READS
        seal_until_done(database, SIGNER)
        verdict = verify(database, SIGNER)
        assert verdict.ok, verdict
        assert verdict.pending == 0
    finally:
        database.dispose()


def test_kill9_after_the_answers_loses_no_answered_reads_entry(
    pg_server: ServerProcess, pg_url: str
) -> None:
    reader, doc_id = _shared_document(pg_server.url)
    codes = _read_concurrently(reader, doc_id)
    answered = codes.count(200)
    assert answered == READS, codes
    # No grace: the process dies at once, with whatever it had not yet written.
    pg_server.proc.send_signal(signal.SIGKILL)
    pg_server.proc.wait(30)
    database = Database(pg_url)
    try:
        assert _views(database, doc_id, reader.user_id) == answered
        seal_until_done(database, SIGNER)
        assert verify(database, SIGNER).ok
    finally:
        database.dispose()
