"""Multipart uploads end to end: the real `docstore serve`, in local and in S3 (moto) mode.

Bytes go where the signed part URLs point (the server's own /storage/parts in local mode,
the S3 endpoint in S3 mode); storage is inspected directly to show what it holds.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest
from sqlalchemy import update

from docstore.config import Settings
from docstore.db import make_engine, utcnow
from docstore.services import Services
from docstore.uploads import tasks
from docstore.uploads.models import UploadSession
from docstore.users.models import User
from tests.fixtures.s3 import unique_bucket
from tests.fixtures.server import ServerProcess, start_server
from tests.uploads.helpers import MiB, Uploader, sha256_hex

# One worker runs this module, so its two servers start once per run.
pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("uploads_e2e")]

PART_SIZE = 5 * MiB


@dataclass
class Deployment:
    """A running server, and the same settings for inspecting storage from the test."""

    mode: str
    server: ServerProcess
    services: Services
    http: httpx.Client

    def objects(self) -> set[str]:
        return {o.key for o in self.services.store.iter_objects()}

    def multipart_uploads(self) -> set[str]:
        """Storage's unfinished uploads (S3: ListMultipartUploads)."""
        return {u.upload_id for u in self.services.store.list_multipart_uploads()}

    def user(self, name: str) -> Uploader:
        r = self.http.post(
            "/api/v1/auth/register",
            json={"email": f"{name}-{os.urandom(4).hex()}@example.com", "name": name,
                  "password": "pass-word-1"},
        )  # fmt: skip
        assert r.status_code == 201, r.text
        body = r.json()
        return Uploader(self.http, body["token"], raw=self.http, user_id=body["user"]["id"])


def deploy(
    tmp: Path, database_url: str, mode: str, moto: str | None, extra: dict[str, str] | None = None
) -> Iterator[Deployment]:
    env = {"DOCSTORE_UPLOAD_PART_SIZE": str(PART_SIZE), "DOCSTORE_RUN_JOBS_IN_SERVER": "false"}
    if mode == "s3":
        assert moto is not None
        query = urlencode({"endpoint_url": moto, "region": "us-east-1", "create_bucket": "true"})
        env["DOCSTORE_STORAGE_URL"] = f"s3://{unique_bucket()}?{query}"
    env.update(extra or {})
    server = start_server(tmp, database_url, env)
    settings = Settings(
        data_dir=server.data_dir,
        database_url=database_url,
        storage_url=env.get("DOCSTORE_STORAGE_URL") or f"file://{server.data_dir / 'blobs'}",
        public_url=server.url,
        secret_key="e2e-secret",
    )
    services = Services.from_settings(settings)
    try:
        with httpx.Client(base_url=server.url, timeout=120, trust_env=False) as http:
            yield Deployment(mode, server, services, http)
    finally:
        services.close()
        server.stop()


@pytest.fixture(scope="session")
def deployments(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    sqlite_template: Path,
) -> Iterator[dict[str, Deployment]]:
    """One server per storage mode, started on first use and kept for the session.

    Session-scoped and cached by mode, so an order that alternates the modes (as xdist may
    hand the tests out) never stops and restarts a server.
    """
    with ExitStack() as stack:

        class Lazy(dict[str, Deployment]):
            def __missing__(self, mode: str) -> Deployment:
                tmp = tmp_path_factory.mktemp(f"uploads-{mode}")
                shutil.copyfile(sqlite_template, tmp / "docstore.db")
                moto = request.getfixturevalue("moto_endpoint") if mode == "s3" else None
                db_url = f"sqlite:///{tmp / 'docstore.db'}"
                self[mode] = stack.enter_context(contextmanager(deploy)(tmp, db_url, mode, moto))
                return self[mode]

        yield Lazy()


@pytest.fixture(params=["local", "s3"])
def deployment(request: pytest.FixtureRequest, deployments: dict[str, Deployment]) -> Deployment:
    """The server in local or in S3 (moto) mode."""
    return deployments[request.param]


def test_three_part_upload_and_byte_identical_download(deployment: Deployment) -> None:
    ann = deployment.user("ann")
    data = os.urandom(2 * PART_SIZE + 4321)
    r = ann.initiate("three.bin", data)
    assert r.status_code == 201, r.text
    started = r.json()
    assert started["part_count"] == 3 and len(started["parts"]) == 3
    server = deployment.server.url
    for part in started["parts"]:
        # S3 mode: the bytes go straight to storage, never through the server.
        assert part["url"].startswith(server) == (deployment.mode == "local")
    reported = ann.put_parts(started, data)
    done = ann.complete(started["upload_id"], parts=reported)
    assert done.status_code == 201, done.text
    doc = done.json()
    assert doc["current_version"]["checksum_sha256"] == sha256_hex(data)

    redirect = ann.api.get(f"/api/v1/documents/{doc['id']}/download", headers=ann.headers)
    assert redirect.status_code == 307
    assert redirect.headers["location"].startswith(server) == (deployment.mode == "local")
    downloaded = ann.download(doc["id"])
    assert downloaded.status_code == 200
    assert downloaded.content == data
    assert ann.me()["used_bytes"] == len(data)


def test_same_users_second_upload_of_the_same_content_is_skipped(deployment: Deployment) -> None:
    ann = deployment.user("ann")
    data = os.urandom(PART_SIZE + 17)
    ann.upload("first.bin", data)
    before = deployment.objects()
    r = ann.initiate("again.bin", data)
    assert r.json()["skip_upload"] is True and r.json()["parts"] == []
    done = ann.complete(r.json()["upload_id"])
    assert done.status_code == 201, done.text
    assert ann.download(done.json()["id"]).content == data
    assert deployment.objects() == before
    assert ann.me()["used_bytes"] == 2 * len(data)


def test_hash_claim_gets_no_bytes(deployment: Deployment) -> None:
    ann, bob = deployment.user("ann"), deployment.user("bob")
    secret = os.urandom(PART_SIZE + 99)
    ann_doc = ann.upload("secret.bin", secret)
    before = deployment.objects()

    r = bob.initiate("claimed.bin", secret)  # bob knows only the SHA-256 and the size
    assert r.status_code == 201
    started = r.json()
    assert started["skip_upload"] is False and started["part_count"] == 2
    bob.put_parts(started, os.urandom(len(secret)))  # other bytes under that checksum
    done = bob.complete(started["upload_id"])
    assert done.status_code == 422 and done.json()["code"] == "checksum_mismatch"

    assert bob.me()["used_bytes"] == 0
    assert deployment.objects() == before
    assert started["upload_id"] not in deployment.multipart_uploads()
    for url in (
        f"/api/v1/documents/{ann_doc['id']}",
        f"/api/v1/documents/{ann_doc['id']}/download",
    ):
        assert bob.api.get(url, headers=bob.headers).status_code == 404
    listing = bob.api.get("/api/v1/folders/root/children", headers=bob.headers).json()
    assert listing["items"] == []
    assert bob.complete(started["upload_id"]).status_code == 404


def test_same_bytes_from_two_users_are_stored_once(deployment: Deployment) -> None:
    ann, bob = deployment.user("ann"), deployment.user("bob")
    data = os.urandom(10 * MiB)
    before = deployment.objects()
    a_doc = ann.upload("a.bin", data)
    b_doc = bob.upload("b.bin", data)
    assert len(deployment.objects() - before) == 1
    assert ann.me()["used_bytes"] == bob.me()["used_bytes"] == 10 * MiB
    assert bob.download(b_doc["id"]).content == data
    assert ann.download(a_doc["id"]).content == data


def test_failed_verification_stores_and_charges_nothing(deployment: Deployment) -> None:
    ann = deployment.user("ann")
    declared, sent = os.urandom(PART_SIZE + 5), os.urandom(PART_SIZE + 5)
    before_objects, before_uploads = deployment.objects(), deployment.multipart_uploads()
    started = ann.initiate("bad.bin", declared).json()
    ann.put_parts(started, sent)
    done = ann.complete(started["upload_id"])
    assert done.status_code == 422 and done.json()["code"] == "checksum_mismatch"
    assert deployment.objects() == before_objects
    assert deployment.multipart_uploads() == before_uploads
    assert ann.me()["used_bytes"] == 0


def test_aborted_upload_leaves_nothing_in_storage(deployment: Deployment) -> None:
    ann = deployment.user("ann")
    data = os.urandom(PART_SIZE + 5)
    before_objects, before_uploads = deployment.objects(), deployment.multipart_uploads()
    started = ann.initiate("abandoned.bin", data).json()
    ann.put_parts(started, data)
    assert len(deployment.multipart_uploads() - before_uploads) == 1
    assert ann.discard(started["upload_id"]).status_code == 204
    assert deployment.multipart_uploads() == before_uploads
    assert deployment.objects() == before_objects
    assert ann.complete(started["upload_id"]).status_code == 404
    assert ann.me()["used_bytes"] == 0


def test_expired_session_is_cleaned_up(deployment: Deployment) -> None:
    ann = deployment.user("ann")
    data = os.urandom(PART_SIZE + 5)
    before = deployment.multipart_uploads()
    started = ann.initiate("stalled.bin", data).json()
    ann.put_parts({**started, "parts": started["parts"][:1]}, data)
    assert len(deployment.multipart_uploads() - before) == 1
    with deployment.services.database.transaction() as db:
        db.execute(
            update(UploadSession)
            .where(UploadSession.id == started["upload_id"])
            .values(expires_at=utcnow() - timedelta(minutes=1))
        )
    result = tasks.expire_sessions(deployment.services)
    assert result["expired"] == 1
    assert deployment.multipart_uploads() == before
    assert ann.complete(started["upload_id"]).status_code == 404


def test_twenty_concurrent_uploads_against_a_quota_for_five(tmp_path: Path, pg_url: str) -> None:
    """On PostgreSQL: exactly five of twenty concurrent initiations fit, used_bytes is exactly
    their sum; racing completes of one session make one document."""
    with contextmanager(deploy)(tmp_path, pg_url, "local", None) as deployment:
        ann = deployment.user("racer")
        sizes = [64 * 1024 + i for i in range(20)]
        # Any five fit (5 * max < quota), no six do (6 * min > quota).
        quota = 5 * max(sizes) + 100
        assert 6 * min(sizes) > quota
        engine = make_engine(pg_url)
        with engine.begin() as conn:
            conn.execute(update(User).where(User.id == ann.user_id).values(quota_bytes=quota))
        engine.dispose()
        # The race is at initiate: each open upload reserves its size (issue 21 item 2).
        datas = [os.urandom(size) for size in sizes]
        with ThreadPoolExecutor(max_workers=20) as pool:
            inits = list(pool.map(lambda i: ann.initiate(f"f{i}.bin", datas[i]), range(20)))
        codes = [r.status_code for r in inits]
        assert codes.count(201) == 5, codes
        assert codes.count(507) == 15, codes
        winners = [(i, r.json()) for i, r in enumerate(inits) if r.status_code == 201]
        for i, session in winners:
            ann.put_parts(session, datas[i])
        started = [session["upload_id"] for _, session in winners]
        with ThreadPoolExecutor(max_workers=5) as pool:
            results = list(pool.map(ann.complete, started))
        assert [r.status_code for r in results] == [201] * 5, [r.text for r in results]
        won = sum(sizes[i] for i, _ in winners)
        assert (ann.me()["used_bytes"], ann.me()["reserved_bytes"]) == (won, 0)
        # Completing the winners again changes nothing.
        again = [
            ann.complete(u) for u, r in zip(started, results, strict=True) if r.status_code == 201
        ]
        assert {r.status_code for r in again} == {201}
        assert ann.me()["used_bytes"] == won

        # Eight completes of one session at once: one document, charged once.
        engine = make_engine(pg_url)
        with engine.begin() as conn:
            conn.execute(update(User).where(User.id == ann.user_id).values(quota_bytes=10**12))
        engine.dispose()
        data = os.urandom(2 * PART_SIZE + 1)
        one = ann.initiate("once.bin", data).json()
        ann.put_parts(one, data)
        with ThreadPoolExecutor(max_workers=8) as pool:
            same = list(pool.map(ann.complete, [one["upload_id"]] * 8))
        assert [r.status_code for r in same] == [201] * 8, [
            r.text for r in same if r.status_code != 201
        ]
        assert len({r.json()["id"] for r in same}) == 1
        assert len({r.json()["version"]["id"] for r in same}) == 1
        assert ann.me()["used_bytes"] == won + len(data)
        assert ann.download(same[0].json()["id"]).content == data
