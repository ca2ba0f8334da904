"""POST /files/batch: many small files in one request (issue 27), on SQLite + local disk and
PostgreSQL + S3 (moto)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from docstore.app import create_app
from docstore.audit.models import AuditLog
from docstore.changes.models import Change
from docstore.config import Settings
from docstore.documents import service
from docstore.documents.models import Blob, Document, DocumentVersion
from docstore.folders.models import Folder
from docstore.services import Services
from docstore.users.models import User as UserRow
from tests.fixtures.app import BASE, Api, User, make_settings
from tests.sharing.helpers import share_with

URL = "/api/v1/files/batch"


@pytest.fixture(params=["sqlite-local", "postgres-s3"])
def batch_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """The two deployments the issue names: embedded, and scaled out (moto for S3)."""
    if request.param == "sqlite-local":
        return make_settings(tmp_path, request.getfixturevalue("sqlite_url"))
    return make_settings(
        tmp_path,
        request.getfixturevalue("pg_url"),
        storage_url=request.getfixturevalue("s3_storage_url"),
    )


def _app(settings: Settings) -> Iterator[Api]:
    with TestClient(create_app(settings), base_url=BASE, follow_redirects=False) as client:
        yield Api(client)


@pytest.fixture
def bapi(batch_settings: Settings) -> Iterator[Api]:
    yield from _app(batch_settings)


def svc_of(api: Api) -> Services:
    return api.client.app.state.services  # type: ignore[attr-defined,no-any-return]


def files(*items: tuple[str, bytes] | tuple[str, bytes, dict[str, str]]) -> list[Any]:
    """httpx multipart `files` for (path, bytes[, part headers])."""
    out: list[Any] = []
    for item in items:
        path, data = item[0], item[1]
        headers = item[2] if len(item) > 2 else {}  # type: ignore[misc]
        out.append(("file", (path, data, "application/octet-stream", headers)))
    return out


def send(user: User, items: list[Any], folder: int | None = None, **kw: Any) -> httpx.Response:
    params = {"folder_id": str(folder)} if folder is not None else {}
    return user.post(URL, params=params, files=items, **kw)


def by_path(r: httpx.Response) -> dict[str, dict[str, Any]]:
    assert r.status_code == 200, r.text
    return {i["path"]: i for i in r.json()["items"]}


def outcomes(r: httpx.Response) -> list[tuple[str, int, str | None]]:
    """Each file's (path, status, problem code), in the order of the request."""
    return [(i["path"], i["status"], (i.get("error") or {}).get("code")) for i in r.json()["items"]]


def content(api: Api, doc_id: int) -> bytes:
    svc = svc_of(api)
    with svc.database.transaction() as db:
        key = db.scalar(
            select(Blob.storage_key)
            .join(DocumentVersion, DocumentVersion.blob_id == Blob.id)
            .join(Document, Document.current_version_id == DocumentVersion.id)
            .where(Document.id == doc_id)
        )
    assert key is not None
    with svc.store.open(key) as f:
        return f.read()


def count(api: Api, stmt: Any) -> int:
    with svc_of(api).database.transaction() as db:
        return int(db.scalar(stmt) or 0)


def live_blobs(api: Api) -> int:
    return count(api, select(func.count()).select_from(Blob).where(Blob.state != "deleting"))


def set_quota(api: Api, user_id: int, quota: int) -> None:
    with svc_of(api).database.transaction() as db:
        db.execute(update(UserRow).where(UserRow.id == user_id).values(quota_bytes=quota))


def test_nested_paths_create_folders_and_documents(bapi: Api) -> None:
    ann = bapi.register()
    a, b, c = b"alpha" * 100, os.urandom(5000), b""
    r = send(ann, files(("top.txt", a), ("x/y/z/deep.bin", b), ("x/empty.txt", c)))
    items = by_path(r)
    assert [i["status"] for i in r.json()["items"]] == [201, 201, 201]
    deep = items["x/y/z/deep.bin"]["document"]
    assert deep["size_bytes"] == 5000 and deep["name"] == "deep.bin"
    assert deep["current_version"]["checksum_sha256"] == hashlib.sha256(b).hexdigest()
    assert items["top.txt"]["document"]["parent_folder_id"] == ann.root
    assert items["top.txt"]["document"]["mime_type"] == "text/plain"
    assert content(bapi, deep["id"]) == b and content(bapi, items["top.txt"]["document"]["id"]) == a
    # The folders exist once each: x/y/z under the root, x holding empty.txt and y.
    x = next(c for c in ann.get(f"/api/v1/folders/{ann.root}/children").json()["items"])
    assert (x["kind"], x["name"]) == ("folder", "x")
    names = sorted(
        c["name"] for c in ann.get(f"/api/v1/folders/{x['id']}/children").json()["items"]
    )
    assert names == ["empty.txt", "y"]
    assert items["x/empty.txt"]["document"]["parent_folder_id"] == x["id"]
    assert ann.me()["used_bytes"] == len(a) + len(b)
    # One UPLOAD audit entry and one change-feed row per document, as a single upload writes.
    ids = [i["document"]["id"] for i in r.json()["items"]]
    uploads = count(
        bapi,
        select(func.count())
        .select_from(AuditLog)
        .where(AuditLog.action == "UPLOAD", AuditLog.document_id.in_(ids)),
    )
    assert uploads == 3
    feed = ann.get("/api/v1/changes", params={"cursor": "0"})
    if feed.status_code == 200:
        kinds = [(c["kind"], c["op"]) for c in feed.json()["items"]]
        assert kinds.count(("document", "created")) == 3 and kinds.count(("folder", "created")) == 3
    # A second batch reuses the folders that are there.
    r2 = send(ann, files(("x/y/other.txt", b"o")))
    assert by_path(r2)["x/y/other.txt"]["status"] == 201
    assert count(bapi, select(func.count()).select_from(Folder).where(Folder.name == "y")) == 1


def test_each_file_fails_alone(bapi: Api) -> None:
    ann = bapi.register()
    ann.upload("taken.txt", b"already here")
    good = b"good bytes"
    r = send(
        ann,
        files(
            ("ok.txt", good),
            ("taken.txt", b"clash"),
            ("../escape.txt", b"no"),
            ("/abs.txt", b"no"),
            ("a//b.txt", b"no"),
            ("dir/", b"no"),
            ("a\\b.txt", b"no"),
            ("bad\u202ename.txt", b"no"),
            ("sum.txt", b"mismatch", {"X-Checksum-SHA256": "0" * 64}),
            ("badsum.txt", b"x", {"X-Checksum-SHA256": "nothex"}),
            ("sum-ok.txt", good, {"X-Checksum-SHA256": hashlib.sha256(good).hexdigest()}),
            ("taken.txt/inside.txt", b"a document is not a folder"),
            ("dup.txt", b"first"),
            ("dup.txt", b"second"),
        ),
    )
    assert r.status_code == 200, r.text
    got = outcomes(r)
    assert got == [
        ("ok.txt", 201, None),
        ("taken.txt", 409, "name_conflict"),
        ("../escape.txt", 422, "validation_error"),
        ("/abs.txt", 422, "validation_error"),
        ("a//b.txt", 422, "validation_error"),
        ("dir/", 422, "validation_error"),
        ("a\\b.txt", 422, "validation_error"),
        ("bad\u202ename.txt", 422, "validation_error"),
        ("sum.txt", 422, "checksum_mismatch"),
        ("badsum.txt", 422, "validation_error"),
        ("sum-ok.txt", 201, None),
        ("taken.txt/inside.txt", 409, "name_conflict"),
        ("dup.txt", 201, None),
        ("dup.txt", 409, "name_conflict"),
    ]
    assert "storage_key" not in r.text and "blobs/" not in r.text
    names = sorted(
        c["name"] for c in ann.get(f"/api/v1/folders/{ann.root}/children").json()["items"]
    )
    assert names == ["dup.txt", "ok.txt", "sum-ok.txt", "taken.txt"]  # no folder "a" left
    assert ann.me()["used_bytes"] == len(b"already here") + 2 * len(good) + len(b"first")
    # Only the kept files' bytes remain (ok and sum-ok share one blob by dedup).
    assert live_blobs(bapi) == 3


def test_quota_fails_the_files_that_do_not_fit(bapi: Api) -> None:
    ann = bapi.register()
    set_quota(bapi, ann.id, 2500)
    r = send(
        ann,
        files(
            ("a.bin", os.urandom(1000)),
            ("b.bin", os.urandom(1000)),
            ("c.bin", os.urandom(1000)),
            ("d.bin", b"x" * 400),
        ),
    )
    got = [(i["path"], i["status"]) for i in r.json()["items"]]
    assert got == [("a.bin", 201), ("b.bin", 201), ("c.bin", 507), ("d.bin", 201)]
    assert r.json()["items"][2]["error"]["code"] == "quota_exceeded"
    assert ann.me()["used_bytes"] == 2400
    assert live_blobs(bapi) == 3


def test_dedup_across_users_and_within_batch(bapi: Api) -> None:
    ann, bob = bapi.register(), bapi.register()
    data = os.urandom(3000)
    ann.upload("orig.bin", data)
    r = send(bob, files(("one.bin", data), ("two.bin", data)))
    assert [i["status"] for i in r.json()["items"]] == [201, 201]
    assert live_blobs(bapi) == 1
    with svc_of(bapi).database.transaction() as db:
        refs = db.scalar(select(Blob.ref_count).where(Blob.state == "active"))
    assert refs == 3
    assert bob.me()["used_bytes"] == 6000  # each version counts against its owner
    for item in r.json()["items"]:
        assert content(bapi, item["document"]["id"]) == data


def test_limits_answer_413_and_keep_nothing(tmp_path: Path, sqlite_url: str) -> None:
    settings = make_settings(
        tmp_path, sqlite_url, batch_max_files=3, batch_max_bytes=20_000, batch_max_file_bytes=4000
    )
    for api in _app(settings):
        ann = api.register()
        r = send(ann, files(*[(f"f{i}.txt", b"x") for i in range(4)]))
        assert r.status_code == 413 and r.json()["code"] == "too_large", r.text
        assert "3 files" in r.json()["detail"]
        r = send(
            ann,
            files(
                ("a.bin", os.urandom(9000)),
                ("b.bin", os.urandom(9000)),
                ("c.bin", os.urandom(3000)),
            ),
        )
        assert r.status_code == 413, r.text
        assert "20000 bytes" in r.json()["detail"]
        # One file over its own limit fails alone.
        r = send(ann, files(("big.bin", os.urandom(4001)), ("small.bin", b"s")))
        assert [(i["path"], i["status"]) for i in r.json()["items"]] == [
            ("big.bin", 413),
            ("small.bin", 201),
        ]
        assert ann.me()["used_bytes"] == 1
        assert count(api, select(func.count()).select_from(Document)) == 1
        assert live_blobs(api) == 1


def test_bad_bodies(bapi: Api) -> None:
    ann = bapi.register()
    r = ann.post(URL, content=b"plain", headers={"Content-Type": "text/plain"})
    assert r.status_code == 400, r.text
    # A form field among the files: the request is not this API's, refused whole.
    r = ann.post(URL, files=[("f", ("a.txt", b"a")), ("field", (None, b"value"))])
    assert r.status_code == 422 and r.json()["code"] == "validation_error", r.text
    # Cut off before the closing boundary: nothing of it is kept.
    head = b'Content-Disposition: form-data; name="f"; filename='
    body = b"--B\r\n" + head + b'"a.txt"\r\n\r\nhello\r\n--B\r\n'
    body += head + b'"b.txt"\r\n\r\nwor'
    r = ann.post(URL, content=body, headers={"Content-Type": "multipart/form-data; boundary=B"})
    assert r.status_code == 400, r.text
    assert count(bapi, select(func.count()).select_from(Document)) == 0
    assert live_blobs(bapi) == 0


def test_an_error_mid_batch_leaves_no_half_rows(bapi: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    ann = bapi.register()

    def failing(*args: Any, **kw: Any) -> Any:
        # Folders, blobs, documents, versions, the quota charge and audit entries are
        # written by then: all of it must go.
        raise RuntimeError("the server fell over mid-batch")

    monkeypatch.setattr(service.changes, "documents_created", failing)
    items = files(*[(f"d{i}/f{i}.txt", f"file {i}".encode()) for i in range(5)])
    with pytest.raises(RuntimeError):
        send(ann, items)
    assert count(bapi, select(func.count()).select_from(Document)) == 0
    assert (
        count(bapi, select(func.count()).select_from(Folder).where(Folder.parent_id.is_not(None)))
        == 0
    )
    assert (
        count(bapi, select(func.count()).select_from(AuditLog).where(AuditLog.action == "UPLOAD"))
        == 0
    )
    assert (
        count(bapi, select(func.count()).select_from(Change).where(Change.user_id == ann.id)) == 0
    )
    assert live_blobs(bapi) == 0
    assert ann.me()["used_bytes"] == 0
    assert list(svc_of(bapi).store.iter_objects()) == []


def test_permissions(bapi: Api) -> None:
    ann, bob, eve = bapi.register(), bapi.register(), bapi.register()
    view = ann.mkdir("view")
    edit = ann.mkdir("edit")
    share_with(ann, bob, "VIEW", folder_id=view["id"])
    share_with(ann, bob, "EDIT", folder_id=edit["id"])
    r = send(bob, files(("a.txt", b"a")), folder=view["id"])
    assert r.status_code == 403, r.text
    r = send(eve, files(("a.txt", b"a")), folder=edit["id"])
    assert r.status_code == 404, r.text
    r = send(eve, files(("a.txt", b"a")), folder=999_999_999)
    assert r.status_code == 404, r.text
    r = bapi.client.post(URL, files=files(("a.txt", b"a")))
    assert r.status_code == 401
    # EDIT: the files and new folders belong to the folder's owner, charged to them.
    r = send(bob, files(("sub/a.txt", b"abc")), folder=edit["id"])
    doc = by_path(r)["sub/a.txt"]["document"]
    assert doc["owner_id"] == ann.id and doc["permission"] == "EDIT"
    assert ann.me()["used_bytes"] == 3 and bob.me()["used_bytes"] == 0
    assert count(bapi, select(func.count()).select_from(Document)) == 1


def test_exact_paths_through_the_client(bapi: Api, tmp_path: Path) -> None:
    """A filename cannot carry every name (HTML5 form encoding: '"' arrives as %22, '%' as
    itself): the client sends X-Docstore-Path, percent-encoded UTF-8, and names survive."""
    from docstore.client import BatchFile, DocstoreClient

    ann = bapi.register()
    local = tmp_path / "on-disk.bin"
    local.write_bytes(b"from disk")
    ds = DocstoreClient(BASE, ann.token, http=bapi.client)  # type: ignore[arg-type]
    items = ds.upload_batch(
        [
            BatchFile(path='q"uote/a"b.txt', content=b"1"),
            BatchFile(path="pct/x%22y.txt", content=b"2"),
            BatchFile(path="ctl/bad\x01.txt", content=b"3"),
            BatchFile(
                path="Cafe\u0301.txt",
                content=local,
                checksum_sha256=hashlib.sha256(b"from disk").hexdigest(),
            ),
            BatchFile(path="wrong.txt", content=b"4", checksum_sha256="f" * 64),
        ],
        max_files=2,  # three requests
    )
    assert [(i.path, i.status) for i in items] == [
        ('q"uote/a"b.txt', 201),
        ("pct/x%22y.txt", 201),
        ("ctl/bad\x01.txt", 422),
        ("Café.txt", 201),
        ("wrong.txt", 422),
    ]
    assert [i.document.name for i in items if i.document] == ['a"b.txt', "x%22y.txt", "Café.txt"]
    assert items[2].error and items[2].error["code"] == "validation_error"
    assert items[4].error and items[4].error["code"] == "checksum_mismatch"
    assert items[3].document and content(bapi, int(items[3].document.id)) == b"from disk"
    # The header must be percent-encoded UTF-8.
    r = send(ann, files(("x.txt", b"x", {"X-Docstore-Path": "%ff.txt"})))
    assert by_path(r)["x.txt"]["status"] == 422


def test_concurrent_batches_share_the_new_folders(bapi: Api) -> None:
    """Two batches creating the same folder path at once: the second waits for the first's
    folder lock, then uses the folder it created (no 409 for a folder that now exists)."""
    import threading

    ann = bapi.register()
    results: list[httpx.Response] = []

    def go(tag: str) -> None:
        results.append(send(ann, files(*[(f"new/dir/{tag}{i}.txt", b"x") for i in range(40)])))

    threads = [threading.Thread(target=go, args=(t,)) for t in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for r in results:
        assert {i["status"] for i in by_path(r).values()} == {201}, r.text[:500]
    assert count(bapi, select(func.count()).select_from(Folder).where(Folder.name == "dir")) == 1


def test_mixed_outcomes_in_one_batch(bapi: Api) -> None:
    """Name clashes (with an existing item, within the batch, a file where a folder is
    asked for), the quota and kept files in one request: each answered in request order,
    and only the kept files leave rows, folders, charges, entries and bytes."""
    ann = bapi.register()
    ann.upload("taken.txt", b"12345")
    set_quota(bapi, ann.id, 1000)
    r = send(
        ann,
        files(
            ("ok/a.txt", b"a" * 100),
            ("taken.txt", b"clash"),
            ("big/b.bin", os.urandom(2000)),
            ("ok/c.txt", b"c" * 200),
            ("ok/a.txt", b"again"),
            ("x", b"a file named x"),
            ("x/y.txt", b"x is a file in this batch"),
            ("ok/d.txt", os.urandom(900)),
            ("ok/e.txt", b"a" * 100),
            ("q.bin", os.urandom(5000)),
            ("q.bin", b"q"),  # the name is free again: the first q.bin was not kept
        ),
    )
    got = outcomes(r)
    assert got == [
        ("ok/a.txt", 201, None),
        ("taken.txt", 409, "name_conflict"),
        ("big/b.bin", 507, "quota_exceeded"),
        ("ok/c.txt", 201, None),
        ("ok/a.txt", 409, "name_conflict"),
        ("x", 201, None),
        ("x/y.txt", 409, "name_conflict"),
        ("ok/d.txt", 507, "quota_exceeded"),
        ("ok/e.txt", 201, None),
        ("q.bin", 507, "quota_exceeded"),
        ("q.bin", 201, None),
    ]
    kept = [i["document"]["id"] for i in r.json()["items"] if i["status"] == 201]
    assert ann.me()["used_bytes"] == 5 + 100 + 200 + len(b"a file named x") + 100 + 1
    root = ann.get(f"/api/v1/folders/{ann.root}/children").json()["items"]
    assert sorted((c["kind"], c["name"]) for c in root) == [
        ("document", "q.bin"),
        ("document", "taken.txt"),
        ("document", "x"),
        ("folder", "ok"),
    ]  # no folder "big": its only file did not fit
    ok = next(c["id"] for c in root if c["name"] == "ok")
    inside = ann.get(f"/api/v1/folders/{ok}/children").json()["items"]
    assert sorted(c["name"] for c in inside) == ["a.txt", "c.txt", "e.txt"]
    uploads = select(func.count()).select_from(AuditLog).where(AuditLog.action == "UPLOAD")
    assert count(bapi, uploads) == 1 + len(kept)
    created = (
        select(func.count())
        .select_from(Change)
        .where(Change.kind == "document", Change.op == "created", Change.item_id.in_(kept))
    )
    assert count(bapi, created) == len(kept)
    # taken.txt, a.txt (e.txt shares its bytes), c.txt, x, q.bin.
    assert live_blobs(bapi) == 5
    assert len(list(svc_of(bapi).store.iter_objects())) == 5
    for item in r.json()["items"]:
        if item["status"] == 201:
            doc = item["document"]
            assert doc["current_version"]["is_current"] and doc["permission"] == "OWNER"


def test_statements_do_not_grow_with_the_files(bapi: Api) -> None:
    """A batch's statements are per request and per folder, not per file (issue 27: the
    per-file statements were most of a small file's CPU)."""
    from sqlalchemy import event

    ann = bapi.register()
    engine = svc_of(bapi).database.engine

    def statements(tag: str, n: int) -> int:
        seen = 0

        def count_one(*_: Any) -> None:
            nonlocal seen
            seen += 1

        items = files(*[(f"{tag}{i % 3}/f{i}.txt", f"{tag} {i}".encode()) for i in range(n)])
        event.listen(engine, "before_cursor_execute", count_one)
        try:
            r = send(ann, items)
        finally:
            event.remove(engine, "before_cursor_execute", count_one)
        assert {i["status"] for i in by_path(r).values()} == {201}
        return seen

    few, many = statements("a", 10), statements("b", 100)
    assert many == few, (few, many)
    assert count(bapi, select(func.count()).select_from(Document)) == 110
