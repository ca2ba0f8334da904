"""Issue 21 item 2: open multipart uploads count against the quota, their number is capped,
and a refused complete leaves no object behind. In-process on SQLite and PostgreSQL (local
storage and S3 on moto); the races against the real server process."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from docstore.app import create_app
from docstore.config import Settings
from docstore.db import utcnow
from docstore.retention import fsck
from docstore.services import Services
from docstore.uploads import tasks
from docstore.uploads.models import UploadSession
from docstore.users.models import User
from tests.fixtures.app import BASE, make_settings
from tests.fixtures.server import start_server
from tests.uploads.helpers import MiB, Uploader, sha256_hex

API = "/api/v1"
_n = itertools.count()


def services_of(client: TestClient) -> Services:
    services: Services = client.app.state.services  # type: ignore[attr-defined]
    return services


def set_quota(svc: Services, user_id: int, quota: int) -> None:
    with svc.database.transaction() as db:
        db.execute(update(User).where(User.id == user_id).values(quota_bytes=quota))


def sign_up(client: TestClient, raw: httpx.Client | None = None) -> Uploader:
    r = client.post(
        f"{API}/auth/register",
        json={
            "email": f"quota{next(_n)}@example.com",
            "name": "Q",
            "password": "correct horse battery",
        },
    )
    assert r.status_code == 201, r.text
    return Uploader(client, r.json()["token"], raw=raw, user_id=r.json()["user"]["id"])


def assert_problem(r: httpx.Response, status: int, code: str) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["code"] == code


def objects(svc: Services) -> list[str]:
    return sorted(o.key for o in svc.store.iter_objects())


def fsck_clean(svc: Services) -> None:
    report = fsck.run(svc)
    assert [f for f in report.errors if f.check == "quota"] == [], report.as_dict()


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(tmp_path, database_url, upload_part_size=5 * MiB, max_open_uploads=5)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings), base_url=BASE, follow_redirects=False) as c:
        yield c


def test_open_uploads_reserve_their_size_the_issue_reproduction(client: TestClient) -> None:
    """A 6 MiB quota, four 6 MiB uploads: today all four initiate; the second must be 507."""
    svc = services_of(client)
    eve = sign_up(client)
    set_quota(svc, eve.user_id, 6 * MiB)
    files = [os.urandom(6 * MiB) for _ in range(4)]
    first = eve.initiate("f0.bin", files[0])
    assert first.status_code == 201, first.text
    for i, data in enumerate(files[1:], start=1):
        assert_problem(eve.initiate(f"f{i}.bin", data), 507, "quota_exceeded")
    me = eve.me()
    assert (me["used_bytes"], me["reserved_bytes"]) == (0, 6 * MiB)
    # The reserved bytes are taken for every other write too.
    assert_problem(
        client.post(f"{API}/files", params={"name": "x"}, content=b"x", headers=eve.headers),
        507,
        "quota_exceeded",
    )
    started = first.json()
    eve.put_parts(started, files[0])
    assert eve.complete(started["upload_id"]).status_code == 201
    me = eve.me()
    assert (me["used_bytes"], me["reserved_bytes"]) == (6 * MiB, 0)
    # Storage holds exactly the one completed file: no other upload could send a byte.
    assert len(objects(svc)) == 1 and svc.store.list_multipart_uploads() == []
    fsck_clean(svc)


def test_discard_expiry_and_mismatch_give_the_reservation_back(client: TestClient) -> None:
    svc = services_of(client)
    ann = sign_up(client)
    set_quota(svc, ann.user_id, 3000)
    one, two, three = (os.urandom(1000) for _ in range(3))
    discarded = ann.initiate("one.bin", one).json()
    expiring = ann.initiate("two.bin", two).json()
    mismatched = ann.initiate("three.bin", three).json()
    assert ann.me()["reserved_bytes"] == 3000
    assert_problem(ann.initiate("four.bin", b"4"), 507, "quota_exceeded")

    assert ann.discard(discarded["upload_id"]).status_code == 204
    assert ann.me()["reserved_bytes"] == 2000
    assert ann.discard(discarded["upload_id"]).status_code == 204  # idempotent: no double
    assert ann.me()["reserved_bytes"] == 2000

    ann.put_parts(mismatched, os.urandom(1000))  # not the bytes it declared
    assert_problem(ann.complete(mismatched["upload_id"]), 422, "checksum_mismatch")
    assert ann.me()["reserved_bytes"] == 1000

    tasks.expire_sessions(svc, now=utcnow() + timedelta(days=2))
    assert ann.me()["reserved_bytes"] == 0
    assert_problem(ann.complete(expiring["upload_id"]), 404, "not_found")
    me = ann.me()
    assert (me["used_bytes"], me["reserved_bytes"]) == (0, 0)
    assert objects(svc) == [] and svc.store.list_multipart_uploads() == []
    fsck_clean(svc)


def test_a_skipped_upload_reserves_too(client: TestClient) -> None:
    """skip_upload sessions are charged at complete like any other: they reserve as well."""
    svc = services_of(client)
    ann = sign_up(client)
    data = os.urandom(1000)
    assert ann.upload("a.bin", data)["size_bytes"] == 1000
    set_quota(svc, ann.user_id, 2000)
    again = ann.initiate("b.bin", data).json()
    assert again["skip_upload"] is True
    assert ann.me()["reserved_bytes"] == 1000
    assert_problem(ann.initiate("c.bin", b"c"), 507, "quota_exceeded")
    assert ann.complete(again["upload_id"]).status_code == 201
    me = ann.me()
    assert (me["used_bytes"], me["reserved_bytes"]) == (2000, 0)


def test_open_upload_sessions_are_capped_per_user(client: TestClient) -> None:
    svc = services_of(client)
    ann, bob = sign_up(client), sign_up(client)
    started = [ann.initiate(f"{i}.bin", b"%d" % i).json() for i in range(5)]  # cap: 5
    r = ann.initiate("6.bin", b"6")
    assert_problem(r, 429, "too_many_uploads")
    assert "5" in r.json()["detail"]
    spec = client.get(f"{API}/openapi.json").json()
    assert "429" in spec["paths"][f"{API}/uploads"]["post"]["responses"]
    assert bob.initiate("other.bin", b"b").status_code == 201  # per user
    assert ann.discard(started[0]["upload_id"]).status_code == 204
    assert ann.initiate("6.bin", b"6").status_code == 201
    # Expired sessions are not open: they no longer count, and expiry releases them.
    with svc.database.transaction() as db:
        db.execute(
            update(UploadSession)
            .where(UploadSession.user_id == ann.user_id)
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    assert ann.initiate("7.bin", b"7").status_code == 201
    tasks.expire_sessions(svc)
    assert ann.me()["reserved_bytes"] == 1


def _refused_complete_leaves_nothing(client: TestClient, raw: httpx.Client | None) -> None:
    """The quota shrank while the parts were on their way: 507, and the joined object is
    deleted at once (the object set is exactly the completed file's), not at expiry."""
    svc = services_of(client)
    ann = sign_up(client, raw)
    kept = ann.upload("kept.bin", os.urandom(1000))
    before = objects(svc)
    assert len(before) == 1
    data = os.urandom(6 * MiB)  # two parts
    started = ann.initiate("later.bin", data).json()
    ann.put_parts(started, data)
    set_quota(svc, ann.user_id, 1000 + 6 * MiB - 1)
    assert_problem(ann.complete(started["upload_id"]), 507, "quota_exceeded")
    assert objects(svc) == before
    assert svc.store.list_multipart_uploads() == []
    me = ann.me()
    assert (me["used_bytes"], me["reserved_bytes"]) == (1000, 0)
    assert_problem(ann.complete(started["upload_id"]), 404, "not_found")
    # A checksum mismatch leaves nothing either.
    set_quota(svc, ann.user_id, 100 * MiB)
    liar = ann.initiate("liar.bin", data).json()
    ann.put_parts(liar, os.urandom(6 * MiB))
    assert_problem(ann.complete(liar["upload_id"]), 422, "checksum_mismatch")
    assert objects(svc) == before and svc.store.list_multipart_uploads() == []
    assert ann.download(kept["id"]).status_code == 200
    fsck_clean(svc)


def test_a_refused_complete_deletes_the_joined_object_at_once_local(client: TestClient) -> None:
    _refused_complete_leaves_nothing(client, None)


def test_a_refused_complete_deletes_the_joined_object_at_once_s3(
    tmp_path: Path, database_url: str, s3_storage_url: str
) -> None:
    settings = make_settings(
        tmp_path, database_url, storage_url=s3_storage_url, upload_part_size=5 * MiB
    )
    with (
        TestClient(create_app(settings), base_url=BASE, follow_redirects=False) as client,
        httpx.Client(timeout=60, trust_env=False) as raw,
    ):
        _refused_complete_leaves_nothing(client, raw)


# -- races, against the real server process ---------------------------------------------

ADMIN = {"email": "admin@example.com", "password": "admin password 1"}


def _register(api: str) -> tuple[int, dict[str, str]]:
    r = httpx.post(
        f"{api}/auth/register",
        json={"email": f"race{next(_n)}@example.com", "name": "R", "password": "pass-word-1"},
    )
    assert r.status_code == 201, r.text
    return r.json()["user"]["id"], {"Authorization": f"Bearer {r.json()['token']}"}


def _initiate_concurrently(api: str, auth: dict[str, str], n: int) -> list[int]:
    def initiate(i: int) -> int:
        data = b"%04d" % i + b"." * 996
        r = httpx.post(
            f"{api}/uploads",
            json={"filename": f"{i}.bin", "size_bytes": 1000, "checksum_sha256": sha256_hex(data)},
            headers=auth,
            timeout=120,
        )
        assert r.status_code in (201, 429, 507), r.text
        if r.status_code != 201:
            code = {429: "too_many_uploads", 507: "quota_exceeded"}[r.status_code]
            assert r.json()["code"] == code
        return r.status_code

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(initiate, range(n)))


def test_concurrent_initiations_never_over_reserve_or_pass_the_cap(
    tmp_path: Path, database_url: str
) -> None:
    env = {
        "DOCSTORE_ADMIN_EMAIL": ADMIN["email"],
        "DOCSTORE_ADMIN_PASSWORD": ADMIN["password"],
        "DOCSTORE_MAX_OPEN_UPLOADS": "8",
    }
    srv = start_server(tmp_path, database_url, env)
    try:
        api = f"{srv.url}{API}"
        r = httpx.post(f"{api}/auth/login", json=ADMIN)
        assert r.status_code == 200, r.text
        admin = {"Authorization": f"Bearer {r.json()['token']}"}
        # Quota for exactly five of twenty concurrent 1000-byte uploads.
        eve_id, eve = _register(api)
        r = httpx.patch(f"{api}/admin/users/{eve_id}", json={"quota_bytes": 5000}, headers=admin)
        assert r.status_code == 200, r.text
        codes = _initiate_concurrently(api, eve, 20)
        assert (codes.count(201), codes.count(507)) == (5, 15), codes
        me: dict[str, Any] = httpx.get(f"{api}/users/me", headers=eve).json()
        assert (me["used_bytes"], me["reserved_bytes"]) == (0, 5000)
        # Plenty of quota: the cap (8 open sessions) holds under the same race.
        _, bob = _register(api)
        codes = _initiate_concurrently(api, bob, 20)
        assert (codes.count(201), codes.count(429)) == (8, 12), codes
        me = httpx.get(f"{api}/users/me", headers=bob).json()
        assert me["reserved_bytes"] == 8000
    finally:
        srv.stop()
