"""The write group (documents.write_group): small uploads share one transaction and one
directory fsync, and each still commits or fails on its own.

In-process against the real database (SQLite and PostgreSQL) and the real local store;
`tests/documents/test_write_group_server.py` drives it through a server process, and
`tests/faults/test_kill9_small.py` kills one mid-group.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session

from docstore.app import create_app
from docstore.context import Actor
from docstore.db import after_commit, on_rollback
from docstore.documents import blobs, service
from docstore.documents.models import Blob, Document
from docstore.documents.schemas import DocumentOut
from docstore.documents.write_group import WriteGroup
from docstore.errors import NameConflict
from docstore.services import Services
from docstore.users.models import User
from tests.fixtures.app import BASE, Api, make_settings


def _services(api: Api) -> Services:
    services: Services = api.client.app.state.services  # type: ignore[attr-defined]
    return services


def _actor(svc: Services, user_id: int) -> Actor:
    with svc.database.transaction() as db:
        user = db.get_one(User, user_id)
        db.expunge(user)
    return Actor(user=user, ip="127.0.0.1", user_agent="test")


def _job(
    svc: Services, actor: Actor, folder: int, name: str, data: bytes
) -> tuple[str, bytes, Any]:
    """What POST /files hands the group: a new key, the bytes, the record step."""
    key = blobs.new_key()
    stored = service.StoredBytes(
        blob_id=0, key=key, size=len(data), sha256=hashlib.sha256(data).hexdigest()
    )

    def record(db: Session) -> DocumentOut:
        return service.create_from_new_bytes(db, svc.store, actor, folder, name, None, stored)

    return key, data, record


def _group_commits(svc: Services, jobs: int) -> int:
    """Commits one group of `jobs` uploads makes: one on SQLite; on PostgreSQL one per
    upload (a shared transaction held several users' rows and deadlocked with concurrent
    writers: documents.write_group)."""
    return jobs if svc.database.is_postgres else 1


def _commits(svc: Services) -> list[int]:
    seen: list[int] = []
    event.listen(svc.database.engine, "commit", lambda _conn: seen.append(1))
    return seen


async def _submit_all(group: WriteGroup, jobs: list[tuple[str, bytes, Any]]) -> list[Any]:
    return await asyncio.gather(
        *(group.submit(key, data, work) for key, data, work in jobs), return_exceptions=True
    )


def test_concurrent_small_uploads_share_one_commit_and_each_is_stored(api: Api) -> None:
    svc = _services(api)
    user = api.register()
    actor = _actor(svc, user.id)
    jobs = [_job(svc, actor, user.root, f"f{i}.txt", f"file {i}".encode()) for i in range(12)]
    commits = _commits(svc)
    results = asyncio.run(_submit_all(WriteGroup(svc), jobs))
    # Submitted together, they wait for one group: on SQLite one transaction, committed once.
    assert len(commits) == _group_commits(svc, len(jobs))
    assert all(isinstance(r, DocumentOut) for r in results), results
    for (key, data, _), out in zip(jobs, results, strict=True):
        assert out.name == f"f{jobs.index((key, data, _))}.txt"
        assert out.current_version is not None
        assert out.current_version.checksum_sha256 == hashlib.sha256(data).hexdigest()
        with svc.store.open(key) as f:
            assert f.read() == data
        got = user.download(out.id)
        assert got.status_code == 200 and got.content == data
    assert user.get("/api/v1/users/me").json()["used_bytes"] == sum(len(d) for _, d, _ in jobs)


def test_a_failing_upload_in_a_group_fails_alone(api: Api) -> None:
    """A name already taken: that upload gets its 409 error, its object and rows are gone
    (its after_commit hooks never run, its on_rollback hooks do), the others commit."""
    svc = _services(api)
    user = api.register()
    assert user.upload("taken.txt", b"first", user.root).status_code == 201
    actor = _actor(svc, user.id)
    jobs = [_job(svc, actor, user.root, f"ok{i}.txt", f"ok {i}".encode()) for i in range(3)]
    jobs.insert(1, _job(svc, actor, user.root, "taken.txt", b"second"))
    hooks: list[str] = []
    key, data, record = jobs[1]

    def failing(db: Session) -> Any:
        after_commit(db, lambda: hooks.append("after_commit"))
        on_rollback(db, lambda: hooks.append("on_rollback"))
        return record(db)

    jobs[1] = (key, data, failing)
    commits = _commits(svc)
    results = asyncio.run(_submit_all(WriteGroup(svc), jobs))
    assert len(commits) == _group_commits(svc, len(jobs) - 1)  # the failed one commits nothing
    assert isinstance(results[1], NameConflict)
    assert hooks == ["on_rollback"]
    assert [isinstance(r, DocumentOut) for r in results] == [True, False, True, True]
    assert svc.store.head(key) is None  # the failed upload's object went
    with svc.database.transaction() as db:
        names = set(db.scalars(select(Document.name).where(Document.owner_id == user.id)))
        assert names == {"taken.txt", "ok0.txt", "ok1.txt", "ok2.txt"}
        assert db.scalar(select(func.count()).select_from(Blob).where(Blob.storage_key == key)) == 0
    me = user.get("/api/v1/users/me").json()
    assert me["used_bytes"] == len(b"first") + sum(len(d) for _, d, _ in jobs) - len(b"second")


def test_on_postgresql_a_committed_upload_is_answered_while_its_group_still_waits(
    api: Api,
) -> None:
    """Each upload of a PostgreSQL group is its own transaction, so it is answered when that
    commits: the first upload's answer does not wait for the second, whose work is held."""
    svc = _services(api)
    if not svc.database.is_postgres:
        pytest.skip("SQLite commits a group once: its uploads are answered together")
    user = api.register()
    actor = _actor(svc, user.id)
    first, second = (
        _job(svc, actor, user.root, f"{n}.txt", n.encode()) for n in ("first", "second")
    )
    release = threading.Event()
    key, data, record = second

    def held(db: Session) -> Any:
        assert release.wait(30), "the test never released the second upload"
        return record(db)

    async def run() -> tuple[Any, bool, Any]:
        group = WriteGroup(svc)
        a = asyncio.ensure_future(group.submit(*first))
        b = asyncio.ensure_future(group.submit(key, data, held))
        answered = await asyncio.wait_for(a, 30)
        waiting = not b.done()
        release.set()
        return answered, waiting, await b

    try:
        answered, second_was_waiting, later = asyncio.run(run())
    finally:
        release.set()
    assert isinstance(answered, DocumentOut) and answered.name == "first.txt"
    assert second_was_waiting
    assert isinstance(later, DocumentOut) and later.name == "second.txt"


def test_a_group_whose_transaction_fails_fails_every_upload_and_leaves_nothing(api: Api) -> None:
    """The group's transaction itself fails (its commit is refused): every request gets
    that error, and no object and no row of theirs stays."""
    svc = _services(api)
    user = api.register()
    actor = _actor(svc, user.id)
    jobs = [_job(svc, actor, user.root, f"g{i}.txt", f"g {i}".encode()) for i in range(3)]

    class Boom(Exception):
        pass

    def refuse(_session: Session) -> None:
        raise Boom("commit refused")

    group = WriteGroup(svc)
    event.listen(svc.database.sessionmaker, "before_commit", refuse)
    try:
        results = asyncio.run(_submit_all(group, jobs))
    finally:
        event.remove(svc.database.sessionmaker, "before_commit", refuse)
    assert all(isinstance(r, Boom) for r in results), results
    for key, _, _ in jobs:
        assert svc.store.head(key) is None
    with svc.database.transaction() as db:
        assert not list(db.scalars(select(Document.name).where(Document.owner_id == user.id)))
    assert user.get("/api/v1/users/me").json()["used_bytes"] == 0


def test_a_deduplicated_small_upload_keeps_one_object(api: Api) -> None:
    """Two small uploads of the same bytes in one group: one blob, one object; the
    duplicate's object is deleted after the commit."""
    svc = _services(api)
    user = api.register()
    actor = _actor(svc, user.id)
    jobs = [_job(svc, actor, user.root, f"same{i}.txt", b"same bytes") for i in range(2)]
    results = asyncio.run(_submit_all(WriteGroup(svc), jobs))
    assert all(isinstance(r, DocumentOut) for r in results), results
    present = [svc.store.head(key) is not None for key, _, _ in jobs]
    assert present == [True, False]
    with svc.database.transaction() as db:
        digest = hashlib.sha256(b"same bytes").hexdigest()
        blob = db.scalars(select(Blob).where(Blob.sha256 == digest)).one()
        assert blob.ref_count == 2 and blob.storage_key == jobs[0][0]
    for out in results:
        assert user.download(out.id).content == b"same bytes"


@pytest.mark.parametrize("size", [1, 4096, 256 * 1024])
def test_small_post_files_through_the_app(api: Api, size: int) -> None:
    """POST /files with a small body takes the group path: 201, the bytes, the checksum
    checked (422 on a wrong one, nothing stored), 409 on a taken name, 401 unsigned."""
    user = api.register()
    data = bytes(range(256)) * (size // 256) or b"x"
    r = user.upload("a.bin", data, user.root)
    assert r.status_code == 201, r.text
    assert user.download(r.json()["id"]).content == data
    again = user.upload("a.bin", data, user.root)
    assert again.status_code == 409, again.text
    wrong = user.upload("b.bin", data, user.root, headers={"X-Checksum-SHA256": "0" * 64})
    assert wrong.status_code == 422, wrong.text
    anon = api.client.post("/api/v1/files", params={"name": "c.bin"}, content=data)
    assert anon.status_code == 401
    names = [d["name"] for d in user.get(f"/api/v1/folders/{user.root}/children").json()["items"]]
    assert names == ["a.bin"]


def test_a_group_on_s3_puts_each_object_and_commits_once(
    tmp_path: Path, database_url: str, s3_storage_url: str
) -> None:
    """A store without `put_many` (S3 on moto): the group puts each object (several at
    once), then records them (in one commit on SQLite)."""
    settings = make_settings(tmp_path, database_url, storage_url=s3_storage_url)
    with TestClient(create_app(settings), base_url=BASE, follow_redirects=False) as client:
        api = Api(client)
        svc = _services(api)
        assert not hasattr(svc.store, "put_many")
        user = api.register()
        actor = _actor(svc, user.id)
        jobs = [_job(svc, actor, user.root, f"s{i}.txt", f"s3 {i}".encode()) for i in range(5)]
        commits = _commits(svc)
        results = asyncio.run(_submit_all(WriteGroup(svc), jobs))
        assert len(commits) == _group_commits(svc, len(jobs))
        assert all(isinstance(r, DocumentOut) for r in results), results
        for (key, data, _), out in zip(jobs, results, strict=True):
            with svc.store.open(key) as f:
                assert f.read() == data
            got = user.get(f"/api/v1/documents/{out.id}").json()
            assert got["current_version"]["checksum_sha256"] == hashlib.sha256(data).hexdigest()
