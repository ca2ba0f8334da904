"""Set-based recording in the write group (documents.write_group `Deferred`,
documents.recording `record_new_files`): the new small files of one group are recorded
together, each one still succeeding or failing alone, with the same rows as one by one.

In-process against the real database and the real local store, as test_write_group. A
group shares one transaction on SQLite only (on PostgreSQL each upload is a transaction
of its own and records alone): the batch assertions are SQLite's; the outcomes hold on
both.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

from sqlalchemy import event, func, select, update
from sqlalchemy.orm import Session

from docstore.audit.models import AuditLog
from docstore.context import Actor
from docstore.documents import blobs, service
from docstore.documents.models import Blob, Document, DocumentVersion
from docstore.documents.recording import NewFile, record_new_files
from docstore.documents.schemas import DocumentOut
from docstore.documents.write_group import Deferred, WriteGroup, batching
from docstore.errors import NameConflict, NotFound, QuotaExceeded
from docstore.services import Services
from docstore.users.models import User
from tests.documents.test_write_group import _actor, _services, _submit_all
from tests.fixtures.app import Api


def _new_file(
    svc: Services, actor: Actor, owner: int, folder: int, name: str, data: bytes, kind: Any = None
) -> tuple[str, bytes, Any]:
    """A job as WebDAV's PUT of a new file hands it to the group: in a shared
    transaction its rows are deferred to the batch; alone, recorded at once."""
    key = blobs.new_key()
    stored = service.StoredBytes(
        blob_id=0, key=key, size=len(data), sha256=hashlib.sha256(data).hexdigest()
    )

    def record(db: Session, files: list[NewFile]) -> list[Any]:
        return record_new_files(db, svc, actor, owner, files)

    def work(db: Session) -> Any:
        if batching(db):
            return Deferred(
                kind or ("new", owner), record, NewFile(folder, name, "text/plain", stored)
            )
        return service.create_from_new_bytes(db, svc.store, actor, folder, name, None, stored)

    return key, data, work


def _doc(result: Any) -> DocumentOut:
    """The document of a job's answer: (document, blob id) from a batch, the document alone."""
    return result[0] if isinstance(result, tuple) else result


def _inserts(svc: Services, table: str) -> list[str]:
    seen: list[str] = []

    def note(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith(f"INSERT INTO {table.upper()} "):
            seen.append(statement)

    event.listen(svc.database.engine, "before_cursor_execute", note)
    return seen


def _stored(svc: Services, user_id: int) -> dict[str, bytes]:
    """Each live document of the user by name, with its current bytes (through the store)."""
    out = {}
    with svc.database.transaction() as db:
        rows = db.execute(
            select(Document.name, Blob.storage_key)
            .join(DocumentVersion, DocumentVersion.id == Document.current_version_id)
            .join(Blob, Blob.id == DocumentVersion.blob_id)
            .where(Document.owner_id == user_id, Document.is_deleted.is_(False))
        ).all()
    for name, key in rows:
        with svc.store.open(key) as f:
            out[name] = f.read()
    return out


def test_a_groups_new_files_are_recorded_in_one_batch(api: Api) -> None:
    svc = _services(api)
    user = api.register()
    actor = _actor(svc, user.id)
    other = user.mkdir("other")["id"]
    jobs = [
        _new_file(svc, actor, user.id, user.root if i % 2 else other, f"n{i}.txt", b"n%d" % i)
        for i in range(8)
    ]
    documents = _inserts(svc, "documents")
    results = asyncio.run(_submit_all(WriteGroup(svc), jobs))
    assert all(isinstance(_doc(r), DocumentOut) for r in results), results
    # One multi-row INSERT for the group's documents on SQLite, one per file on PostgreSQL.
    assert len(documents) == (8 if svc.database.is_postgres else 1)
    assert _stored(svc, user.id) == {f"n{i}.txt": b"n%d" % i for i in range(8)}
    for result in results:
        doc = _doc(result)
        assert doc.current_version is not None and doc.current_version.version_number == 1
        assert user.get(f"/api/v1/documents/{doc.id}").status_code == 200
    me = user.get("/api/v1/users/me").json()
    assert me["used_bytes"] == sum(len(d) for _, d, _ in jobs)
    with svc.database.transaction() as db:  # an UPLOAD entry each, with the caller's agent
        audit = db.execute(
            select(AuditLog.document_id, AuditLog.user_agent).where(
                AuditLog.owner_id == user.id, AuditLog.action == "UPLOAD"
            )
        ).all()
    assert sorted(audit) == sorted((_doc(r).id, "test") for r in results)


def test_each_file_of_a_batch_fails_alone_and_dedups_as_alone(api: Api) -> None:
    """One batch with a name already taken (409), a folder deleted meanwhile (404), a file
    past the quota (507), bytes the server holds already, the same bytes twice, and the
    same place twice (the second runs again alone after the batch: here a 409, for
    WebDAV a new version). What fails leaves no row and no object; the rest is stored."""
    svc = _services(api)
    user = api.register()
    actor = _actor(svc, user.id)
    assert user.upload("taken.txt", b"taken", user.root).status_code == 201
    assert user.upload("held.txt", b"held before", user.root).status_code == 201
    gone = user.mkdir("gone")["id"]
    with svc.database.transaction() as db:
        used = db.get_one(User, user.id).used_bytes
        db.execute(update(User).where(User.id == user.id).values(quota_bytes=used + 1000))
    specs = [
        ("a.txt", user.root, b"a" * 100),
        ("taken.txt", user.root, b"other"),
        ("in-gone.txt", gone, b"x" * 10),
        ("big.txt", user.root, b"b" * 2000),
        ("again.txt", user.root, b"held before"),
        ("twin1.txt", user.root, b"twin bytes"),
        ("twin2.txt", user.root, b"twin bytes"),
        ("a.txt", user.root, b"second a"),
        ("last.txt", user.root, b"l" * 100),
    ]
    assert user.delete(f"/api/v1/folders/{gone}").status_code == 204
    jobs = [_new_file(svc, actor, user.id, folder, name, data) for name, folder, data in specs]
    documents = _inserts(svc, "documents")
    results = asyncio.run(_submit_all(WriteGroup(svc), jobs))
    # Alone (PostgreSQL), the file past the quota inserts its row before its charge fails.
    assert len(documents) == (6 if svc.database.is_postgres else 1)  # recorded as a batch
    kinds = [type(r).__name__ if isinstance(r, Exception) else "ok" for r in results]
    assert kinds == [
        "ok",
        NameConflict.__name__,
        NotFound.__name__,
        QuotaExceeded.__name__,
        "ok",
        "ok",
        "ok",
        NameConflict.__name__,
        "ok",
    ], results
    assert _stored(svc, user.id) == {
        "taken.txt": b"taken",
        "held.txt": b"held before",
        "a.txt": b"a" * 100,
        "again.txt": b"held before",
        "twin1.txt": b"twin bytes",
        "twin2.txt": b"twin bytes",
        "last.txt": b"l" * 100,
    }
    with svc.database.transaction() as db:
        for data, refs in ((b"held before", 2), (b"twin bytes", 2)):
            digest = hashlib.sha256(data).hexdigest()
            blob = db.scalars(select(Blob).where(Blob.sha256 == digest)).one()
            assert blob.ref_count == refs and blob.state == "active"
        keys = set(db.scalars(select(Blob.storage_key)))
        assert db.scalar(select(func.count()).select_from(Blob).where(Blob.state != "active")) == 0
        used = db.get_one(User, user.id).used_bytes
    # Each object a row names is there; every other object of the group is gone.
    for (key, _, _), kind in zip(jobs, kinds, strict=True):
        assert (svc.store.head(key) is not None) == (key in keys), (key, kind)
    stored_bytes = len(b"taken" + b"held before") + 100 + 11 + 10 + 10 + 100
    assert used == stored_bytes  # the quota was charged for what was stored, once each


def test_a_batch_of_bytes_the_server_holds_already(api: Api) -> None:
    """Every file of the batch deduplicates (no new blob row at all): each is stored, onto
    the existing blob, and its own object deleted."""
    svc = _services(api)
    user = api.register()
    actor = _actor(svc, user.id)
    assert user.upload("orig.txt", b"held", user.root).status_code == 201
    jobs = [_new_file(svc, actor, user.id, user.root, f"c{i}.txt", b"held") for i in range(4)]
    documents = _inserts(svc, "documents")
    results = asyncio.run(_submit_all(WriteGroup(svc), jobs))
    assert len(documents) == (4 if svc.database.is_postgres else 1)  # recorded as a batch
    assert all(isinstance(_doc(r), DocumentOut) for r in results), results
    with svc.database.transaction() as db:
        blob = db.scalars(
            select(Blob).where(Blob.sha256 == hashlib.sha256(b"held").hexdigest())
        ).one()
        assert blob.ref_count == 5
        digest = hashlib.sha256(b"held").hexdigest()
        assert db.scalar(select(func.count()).select_from(Blob).where(Blob.sha256 == digest)) == 1
    assert all(svc.store.head(key) is None for key, _, _ in jobs)
    assert set(_stored(svc, user.id)) == {"orig.txt"} | {f"c{i}.txt" for i in range(4)}


def test_a_batch_that_fails_as_a_whole_records_each_file_alone(api: Api) -> None:
    """A batch whose recording raises (here its first call): its savepoint is rolled back
    and each of its jobs runs again alone, succeeding or failing on its own."""
    svc = _services(api)
    user = api.register()
    actor = _actor(svc, user.id)
    calls: list[int] = []

    def flaky(db: Session, files: list[NewFile]) -> list[Any]:
        calls.append(len(files))
        done = record_new_files(db, svc, actor, user.id, files)
        raise RuntimeError("the batch breaks after writing its rows")
        return done  # pragma: no cover

    jobs = []
    for i in range(4):
        key, data, plain = _new_file(svc, actor, user.id, user.root, f"f{i}.txt", b"f%d" % i)

        def work(db: Session, plain: Any = plain) -> Any:
            out = plain(db)
            return Deferred(out.kind, flaky, out.item) if isinstance(out, Deferred) else out

        jobs.append((key, data, work))
    results = asyncio.run(_submit_all(WriteGroup(svc), jobs))
    assert all(isinstance(r, DocumentOut) for r in results), results  # each alone
    assert calls == ([] if svc.database.is_postgres else [4])
    assert _stored(svc, user.id) == {f"f{i}.txt": b"f%d" % i for i in range(4)}
    with svc.database.transaction() as db:  # the broken batch's rows are gone
        owned = select(func.count()).select_from(Document).where(Document.owner_id == user.id)
        assert db.scalar(owned) == 4
        assert db.get_one(User, user.id).used_bytes == sum(len(d) for _, d, _ in jobs)
