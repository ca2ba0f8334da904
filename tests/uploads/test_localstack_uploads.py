"""What S3 itself enforces of an upload with part checksums, on LocalStack (moto checks none).

The server never reads an S3 upload back: it relies on S3 refusing a part whose bytes do
not match the SHA-256 signed into its URL. These tests show S3 does refuse, that the
object S3 keeps has exactly the content hash the server recorded, and that declaring
someone else's hashes without their bytes gets nothing. Each refusal is paired with the
honest request succeeding. One LocalStack per session (tests.fixtures.localstack).
"""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select

from docstore.config import Settings
from docstore.documents.models import Blob, Document
from docstore.hashing import s3_composite
from docstore.services import Services
from tests.fixtures.app import Api, make_settings
from tests.fixtures.s3 import unique_bucket
from tests.uploads.helpers import MiB, Uploader

pytestmark = pytest.mark.xdist_group("localstack")


@pytest.fixture
def database_url(sqlite_url: str) -> str:
    """SQLite only: what is tested here is S3's side, the same for either database."""
    return sqlite_url


@pytest.fixture
def settings(localstack_endpoint: str, tmp_path: Path, database_url: str) -> Settings:
    query = f"endpoint_url={localstack_endpoint}&region=us-east-1&create_bucket=true"
    return make_settings(
        tmp_path,
        database_url,
        upload_part_size=5 * MiB,
        storage_url=f"s3://{unique_bucket()}?{query}",
    )


def uploader(api: Api, raw: httpx.Client) -> Uploader:
    user = api.register()
    return Uploader(api.client, user.token, raw=raw, user_id=user.id)


def read_back() -> float:
    return REGISTRY.get_sample_value("docstore_storage_read_bytes_total") or 0.0


def active_blobs(svc: Services) -> list[Blob]:
    with svc.database.transaction() as db:
        rows = list(db.scalars(select(Blob).where(Blob.state == "active")))
        db.expunge_all()
        return rows


def put(raw: httpx.Client, part: dict[str, object], data: bytes, **headers: str) -> httpx.Response:
    sent = {**part["headers"], **headers}  # type: ignore[dict-item]
    sent = {k: v for k, v in sent.items() if v}
    return raw.request(str(part["method"]), str(part["url"]), content=data, headers=sent)


def test_s3_refuses_other_bytes_than_declared_and_proves_the_content_hash(
    api: Api, svc: Services, raw: httpx.Client
) -> None:
    ann = uploader(api, raw)
    data = os.urandom(5 * MiB + 4321)
    before = read_back()
    started = ann.initiate_hashed("a.bin", data).json()
    first, second = started["parts"]
    other = bytearray(data[: 5 * MiB])
    other[1000] ^= 0xFF  # one bit flipped, same length
    r = put(raw, first, bytes(other))
    assert r.status_code == 400 and "BadDigest" in r.text, r.text
    # Without the signed checksum header the request's signature no longer matches.
    r = put(raw, first, data[: 5 * MiB], **{"x-amz-checksum-sha256": ""})
    assert r.status_code == 403, r.text
    # Only the part with the declared bytes is taken; completing before it is refused.
    r = put(raw, second, data[5 * MiB :])
    assert r.status_code == 200, r.text
    refused = ann.complete(started["upload_id"])
    assert refused.status_code == 422, refused.text
    r = put(raw, first, data[: 5 * MiB])
    assert r.status_code == 200, r.text
    done = ann.complete(started["upload_id"])
    assert done.status_code == 201, done.text
    assert done.json()["current_version"]["checksum_verified"] is False
    assert read_back() == before  # the server read nothing back from S3

    # What S3 keeps is what the server recorded: S3's composite checksum of the object
    # is the content hash over 5 MiB blocks, and the bytes are the declared ones.
    [blob] = active_blobs(svc)
    assert blob.content_hash is not None
    store = svc.store
    head = store.client.head_object(  # type: ignore[attr-defined]
        Bucket=store.bucket,  # type: ignore[attr-defined]
        Key=blob.storage_key,
        ChecksumMode="ENABLED",
    )
    assert head["ChecksumSHA256"] == s3_composite(blob.content_hash, 2)
    assert ann.download(done.json()["id"]).content == data


def test_a_hash_claim_without_the_bytes_gets_nothing(
    api: Api, svc: Services, raw: httpx.Client
) -> None:
    """Bob knows the SHA-256 and the part hashes of Ann's file, not its bytes."""
    ann, bob = uploader(api, raw), uploader(api, raw)
    data = os.urandom(5 * MiB + 17)
    ann.upload_hashed("secret.bin", data)
    r = bob.initiate_hashed("mine.bin", data)
    assert r.status_code == 201, r.text
    started = r.json()
    assert started["skip_upload"] is False  # no existence oracle, nothing skipped
    guesses = [os.urandom(5 * MiB), os.urandom(17)]
    for part, guess in zip(started["parts"], guesses, strict=True):
        r = put(raw, part, guess)
        assert r.status_code == 400 and "BadDigest" in r.text, r.text
    done = bob.complete(started["upload_id"])
    assert done.status_code == 422, done.text
    with svc.database.transaction() as db:
        owned = db.scalars(select(Document.id).where(Document.owner_id == bob.user_id)).all()
    assert owned == []
    assert bob.me()["used_bytes"] == 0
    [blob] = active_blobs(svc)
    assert blob.ref_count == 1  # Ann's alone: nothing was deduplicated onto it
