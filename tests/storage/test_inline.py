"""Small objects kept in the database (storage.inline), through the app over its real
database (SQLite and PostgreSQL) and the real local store: where the bytes go, every way
they are read back, and that they live and die with their blob rows."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import delete, func, select, update

from docstore.config import Settings
from docstore.documents.models import Blob
from docstore.migrate import alembic_config
from docstore.retention import fsck, gc
from docstore.storage.inline import InlineObject
from tests.dav.requests import DAV, dav
from tests.dav.test_dav import _puts_in_a_held_group
from tests.fixtures.app import Api, User
from tests.retention.helpers import later, services

LIMIT = 64 * 1024  # the default inline_object_max_bytes


def files(settings: Settings) -> list[Path]:
    """The objects the local store holds as files."""
    root = Path(settings.storage_url.removeprefix("file://")) / "objects"
    return [p for p in root.rglob("*") if p.is_file()]


def rows(api: Api) -> dict[str, bytes]:
    """Every inline object: key -> bytes."""
    with services(api).database.transaction() as db:
        return {o.storage_key: o.data for o in db.scalars(select(InlineObject))}


def key_of(api: Api, user: User, doc_id: int) -> str:
    version = user.get(f"/api/v1/documents/{doc_id}").json()["current_version"]
    with services(api).database.transaction() as db:
        return str(
            db.scalar(
                select(Blob.storage_key).where(
                    Blob.sha256 == version["checksum_sha256"], Blob.state == "active"
                )
            )
        )


def doc_named(user: User, name: str) -> dict[str, Any]:
    items = user.get("/api/v1/folders/root/children").json()["items"]
    return dict(next(i for i in items if i["name"] == name))


def test_small_files_are_rows_and_read_back_by_every_path(api: Api, settings: Settings) -> None:
    alice = api.register()
    posted, put = os.urandom(4096), os.urandom(LIMIT)  # the limit itself is inline
    r = alice.upload("posted.bin", posted)
    assert r.status_code == 201, r.text
    assert dav(alice, "PUT", f"{DAV}/put.bin", content=put).status_code == 201
    big = os.urandom(LIMIT + 1)
    assert dav(alice, "PUT", f"{DAV}/big.bin", content=big).status_code == 201

    stored = rows(api)
    assert sorted(stored.values()) == sorted([posted, put])
    assert all(key.startswith("inline/") for key in stored)
    assert [p.read_bytes() for p in files(settings)] == [big]  # only the large one is a file
    doc = doc_named(alice, "posted.bin")
    assert key_of(api, alice, doc["id"]) in stored

    # The API's download: a signed URL, served from the row, ranges included.
    got = alice.download(doc["id"])
    assert got.status_code == 200 and got.content == posted
    assert got.headers["content-length"] == "4096"
    assert "attachment" in got.headers["content-disposition"]
    signed = alice.get(f"/api/v1/documents/{doc['id']}/download").headers["location"]
    part = api.client.get(signed, headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == posted[100:200]
    assert part.headers["content-range"] == "bytes 100-199/4096"
    tail = api.client.get(signed, headers={"Range": "bytes=-10"})
    assert tail.status_code == 206 and tail.content == posted[-10:]
    assert api.client.get(signed, headers={"Range": "bytes=5000-"}).status_code == 416
    head = api.client.head(signed)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == "4096"
    # WebDAV GET, whole and in part.
    assert dav(alice, "GET", f"{DAV}/put.bin").content == put
    ranged = dav(alice, "GET", f"{DAV}/put.bin", headers={"Range": "bytes=10-19"})
    assert ranged.status_code == 206 and ranged.content == put[10:20]
    # A share link's download.
    r = alice.post(
        "/api/v1/shares", json={"document_id": doc["id"], "permission": "view", "link": True}
    )
    assert r.status_code == 201, r.text
    link = api.client.get(f"/api/v1/links/{r.json()['token']}/download")
    if link.status_code == 307:
        link = api.client.get(link.headers["location"])
    assert link.status_code == 200 and link.content == posted
    # An older version after a new one, and fsck reading each object again.
    r = alice.post(f"/api/v1/documents/{doc['id']}/versions", content=b"second")
    assert r.status_code == 201, r.text
    versions = alice.get(f"/api/v1/documents/{doc['id']}/versions").json()["items"]
    first = next(v for v in versions if v["version_number"] == 1)
    assert alice.download(doc["id"], version_id=first["id"]).content == posted
    assert fsck.run(services(api), rehash=True).ok


def test_identical_and_refused_files_leave_no_row_of_their_own(api: Api) -> None:
    """Content already stored adds no row; a PUT refused in its group (a name taken, a
    quota exceeded) leaves neither row nor blob, while the others of its group keep theirs."""
    alice = api.register()
    same = os.urandom(2000)
    assert alice.upload("one.bin", same).status_code == 201
    assert alice.upload("two.bin", same).status_code == 201
    assert list(rows(api).values()) == [same]

    assert alice.mkdir("taken.bin")["name"] == "taken.bin"
    new = [os.urandom(3000) for _ in range(3)]
    answers, _ = _puts_in_a_held_group(
        api,
        alice,
        [
            ("n0.bin", new[0], {}),
            ("taken.bin", os.urandom(100), {}),  # a folder of that name: refused
            ("n1.bin", new[1], {}),
            ("missing/n.bin", os.urandom(100), {}),  # no such folder: 409
            ("n2.bin", new[2], {}),
        ],
    )
    codes = [a.status_code if a is not None else None for a in answers]
    assert codes[0] == codes[2] == codes[4] == 201, codes
    assert codes[1] in (405, 409) and codes[3] == 409, codes
    assert sorted(rows(api).values()) == sorted([same, *new])
    with services(api).database.transaction() as db:
        inline_blobs = db.scalar(
            select(func.count()).select_from(Blob).where(Blob.storage_key.like("inline/%"))
        )
    assert inline_blobs == 4
    assert alice.me()["used_bytes"] == 2 * 2000 + 3 * 3000


def test_an_inline_object_goes_with_its_blob_row(api: Api) -> None:
    """GC deletes the blob row and the row's cascade takes the bytes in that transaction;
    fsck sees a missing or altered inline object as it sees a file's."""
    alice = api.register()
    kept, dropped = os.urandom(1000), os.urandom(1500)
    assert alice.upload("kept.bin", kept).status_code == 201
    doc = alice.upload("dropped.bin", dropped).json()
    assert alice.delete(f"/api/v1/documents/{doc['id']}").status_code == 204
    assert alice.delete(f"/api/v1/trash/{doc['id']}").status_code == 204
    svc = services(api)
    gc.collect(svc.database, svc.store, svc.settings, now=later(hours=2))
    assert list(rows(api).values()) == [kept]
    with svc.database.transaction() as db:
        assert db.scalar(select(func.count()).select_from(Blob)) == 1

    key = key_of(api, alice, doc_named(alice, "kept.bin")["id"])
    with svc.database.transaction() as db:
        db.execute(
            update(InlineObject).where(InlineObject.storage_key == key).values(data=b"y" * 1000)
        )
    report = fsck.run(svc, rehash=True)
    assert [f.check for f in report.errors] == ["checksum_mismatch"]
    with svc.database.transaction() as db:
        db.execute(delete(InlineObject).where(InlineObject.storage_key == key))
    assert [f.check for f in fsck.run(svc).errors] == ["missing_object"]


def test_inline_objects_can_be_turned_off(tmp_path: Path, database_url: str) -> None:
    from fastapi.testclient import TestClient

    from docstore.app import create_app
    from tests.fixtures.app import BASE, make_settings

    """Turned off, a small file is a file again; those kept before are still served."""
    settings = make_settings(tmp_path, database_url)
    with TestClient(create_app(settings), base_url=BASE, follow_redirects=False) as client:
        api = Api(client)
        alice = api.register("alice")
        before = os.urandom(100)
        assert alice.upload("before.bin", before).status_code == 201
        assert list(rows(api).values()) == [before]
        token = alice.token
    settings = make_settings(tmp_path, database_url, inline_object_max_bytes=0)
    with TestClient(create_app(settings), base_url=BASE, follow_redirects=False) as client:
        api = Api(client)
        alice = alice_on(api, token)
        data, empty = os.urandom(100), b""
        assert alice.upload("small.bin", data).status_code == 201
        assert alice.upload("empty.bin", empty).status_code == 201
        assert list(rows(api).values()) == [before]
        assert sorted(p.read_bytes() for p in files(settings)) == [empty, data]
        for name, body in (("small.bin", data), ("empty.bin", empty), ("before.bin", before)):
            assert alice.download(doc_named(alice, name)["id"]).content == body


def test_a_downgrade_past_inline_objects_refuses_to_lose_them(api: Api, settings: Settings) -> None:
    alice = api.register()
    assert alice.upload("small.bin", b"kept in the database").status_code == 201
    config = alembic_config(str(services(api).database.url))
    with pytest.raises(RuntimeError, match="would lose them"):
        command.downgrade(config, "0016_share_expiry")
    assert list(rows(api).values()) == [b"kept in the database"]


def test_on_s3_the_small_files_a_local_installation_kept_are_written_out(
    tmp_path: Path, sqlite_url: str, s3_storage_url: str
) -> None:
    """A local installation's database brought to S3 storage (a restore, or a switch): the
    server's start writes each inline object to the bucket under its own key and drops the
    rows, and every download then comes from S3, byte-identical."""
    import httpx
    from fastapi.testclient import TestClient

    from docstore.app import create_app
    from tests.fixtures.app import BASE, make_settings

    local = make_settings(tmp_path, sqlite_url)
    with TestClient(create_app(local), base_url=BASE, follow_redirects=False) as client:
        api = Api(client)
        alice = api.register("alice")
        kept = {f"f{i}.bin": os.urandom(100 + i) for i in range(3)}
        for name, data in kept.items():
            assert alice.upload(name, data).status_code == 201
        assert len(rows(api)) == 3
        token = alice.token

    on_s3 = make_settings(tmp_path, sqlite_url, storage_url=s3_storage_url)
    with TestClient(create_app(on_s3), base_url=BASE, follow_redirects=False) as client:
        api = Api(client)
        assert rows(api) == {}
        alice = alice_on(api, token)
        keys = {key_of(api, alice, doc_named(alice, name)["id"]) for name in kept}
        assert all(key.startswith("inline/") for key in keys)
        assert {o.key for o in services(api).store.iter_objects("inline/")} == keys
        for name, data in kept.items():
            r = alice.get(f"/api/v1/documents/{doc_named(alice, name)['id']}/download")
            assert r.status_code == 307 and not r.headers["location"].startswith(BASE)
            assert httpx.get(r.headers["location"]).content == data  # from the bucket
        assert fsck.run(services(api), rehash=True).ok


def alice_on(api: Api, token: str) -> User:
    info = api.client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {token}"})
    return User(api, token, info.json())
