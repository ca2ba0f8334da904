"""Uploads that declare part checksums: the content hash, dedup on it, the verification job.

On both stores (local, and S3 through moto) and both databases. moto does not check a
part's bytes against its signed checksum, so what S3 itself enforces is proven on
LocalStack (test_localstack_uploads.py); here the server's side of the contract is tested.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select

from docstore.config import Settings
from docstore.documents.models import Blob, DocumentVersion
from docstore.hashing import BlockHasher, content_hash_bytes
from docstore.retention import fsck
from docstore.services import Services
from docstore.uploads import verification
from tests.fixtures.app import Api, make_settings
from tests.fixtures.s3 import unique_bucket
from tests.uploads.helpers import MiB, Uploader, sha256_hex

NewUploader = Callable[[], Uploader]


@pytest.fixture(params=["local", "s3"])
def settings(request: pytest.FixtureRequest, tmp_path: Path, database_url: str) -> Settings:
    over: dict[str, object] = {"upload_part_size": 5 * MiB}
    if request.param == "s3":
        moto = request.getfixturevalue("moto_endpoint")
        query = f"endpoint_url={moto}&region=us-east-1&create_bucket=true"
        over["storage_url"] = f"s3://{unique_bucket()}?{query}"
    return make_settings(tmp_path, database_url, **over)


@pytest.fixture
def new_uploader(api: Api, raw: httpx.Client) -> NewUploader:
    def make() -> Uploader:
        user = api.register()
        return Uploader(api.client, user.token, raw=raw, user_id=user.id)

    return make


def read_back() -> float:
    return REGISTRY.get_sample_value("docstore_storage_read_bytes_total") or 0.0


def blobs(svc: Services) -> list[Blob]:
    with svc.database.transaction() as db:
        rows = list(db.scalars(select(Blob).order_by(Blob.id)))
        db.expunge_all()
        return rows


def versions(svc: Services) -> list[DocumentVersion]:
    with svc.database.transaction() as db:
        rows = list(db.scalars(select(DocumentVersion).order_by(DocumentVersion.id)))
        db.expunge_all()
        return rows


def test_block_hasher_is_the_hash_of_the_part_hashes() -> None:
    data = os.urandom(2 * 1024 + 5)
    hasher = BlockHasher(1024)
    for i in range(0, len(data), 333):  # chunks that straddle block boundaries
        hasher.update(data[i : i + 333])
    import base64
    import hashlib

    parts = [data[:1024], data[1024:2048], data[2048:]]
    digests = b"".join(hashlib.sha256(p).digest() for p in parts)
    assert hasher.content_hash() == hashlib.sha256(digests).hexdigest()
    assert hasher.block_digests_b64() == [
        base64.b64encode(hashlib.sha256(p).digest()).decode() for p in parts
    ]
    assert hasher.sha256_hex() == hashlib.sha256(data).hexdigest()
    # Exactly two blocks: no empty third block; an empty file is one empty block.
    assert content_hash_bytes(data[:2048], 1024) == hashlib.sha256(digests[:64]).hexdigest()
    empty = hashlib.sha256(hashlib.sha256(b"").digest()).hexdigest()
    assert content_hash_bytes(b"", 1024) == empty


def test_upload_with_part_checksums_reads_nothing_back(
    svc: Services, new_uploader: NewUploader
) -> None:
    ann = new_uploader()
    data = os.urandom(5 * MiB + 1234)
    before = read_back()
    doc = ann.upload_hashed("a.bin", data)
    assert read_back() == before  # not a byte read back from storage
    version = doc["current_version"]
    assert version["checksum_sha256"] == sha256_hex(data)
    [blob] = blobs(svc)
    assert blob.content_hash == content_hash_bytes(data, 5 * MiB)
    assert blob.block_size == 5 * MiB
    # S3: the plain SHA-256 is the client's claim until the job; local: hashed at upload.
    local = svc.store.kind == "local"
    assert version["checksum_verified"] is local and blob.verified is local
    assert ann.download(doc["id"]).content == data

    report = verification.verify_blobs(svc)
    assert report.verified == (0 if local else 1) and report.mismatched == 0
    r = ann.api.get(f"/api/v1/documents/{doc['id']}", headers=ann.headers)
    assert r.json()["current_version"]["checksum_verified"] is True
    [again] = blobs(svc)
    assert again.verified and again.content_hash == blob.content_hash


def test_a_lying_clients_checksum_is_found_by_the_job_and_never_deduplicated(
    svc: Services, new_uploader: NewUploader
) -> None:
    """Right bytes, right part checksums, a false whole-file SHA-256."""
    liar, bob = new_uploader(), new_uploader()
    data = os.urandom(5 * MiB + 10)
    claimed = sha256_hex(b"something else")
    r = liar.initiate_hashed("lie.bin", data, checksum_sha256=claimed)
    assert r.status_code == 201, r.text
    started = r.json()
    liar.put_parts(started, data)
    done = liar.complete(started["upload_id"])
    if svc.store.kind == "local":  # the local store hashes while joining: 422 at once
        assert done.status_code == 422, done.text
        assert blobs(svc) == [] or all(b.state == "deleting" for b in blobs(svc))
        return
    assert done.status_code == 201, done.text
    lie = done.json()
    assert lie["current_version"]["checksum_sha256"] == claimed
    assert lie["current_version"]["checksum_verified"] is False

    # Before the job: the same bytes with the true SHA-256 do not dedup onto the liar's blob.
    bob.upload_hashed("true.bin", data)
    assert len([b for b in blobs(svc) if b.state == "active"]) == 2

    report = verification.verify_blobs(svc)
    assert report.mismatched == 1 and report.verified == 1
    by_sha = {b.sha256: b for b in blobs(svc)}
    assert by_sha[claimed].checksum_mismatch and not by_sha[claimed].verified
    assert by_sha[sha256_hex(data)].verified
    r = liar.api.get(f"/api/v1/documents/{lie['id']}", headers=liar.headers)
    assert r.json()["current_version"]["checksum_verified"] is False
    # A second run leaves the mismatch alone (nothing left to read).
    assert verification.verify_blobs(svc).checked == 0

    # fsck --rehash --repair: a false claim is reported, not taken for storage damage.
    found = fsck.run(svc, repair=True, rehash=True)
    claims = [f for f in found.findings if f.check == "unverified_checksum"]
    assert [f.subject for f in claims] == [f"blob {by_sha[claimed].id}"]
    assert not any(b.damaged for b in blobs(svc))

    # After the job: the same false claim again dedups onto nothing (the mismatch is final).
    carol = new_uploader()
    carol.upload_hashed("again.bin", data, checksum_sha256=claimed)
    liar_blob_refs = [v.blob_id for v in versions(svc)].count(by_sha[claimed].id)
    assert liar_blob_refs == 1


def test_same_bytes_with_part_checksums_are_stored_once(
    svc: Services, new_uploader: NewUploader
) -> None:
    ann, bob = new_uploader(), new_uploader()
    data = os.urandom(5 * MiB + 99)
    before = read_back()
    a = ann.upload_hashed("a.bin", data)
    b = bob.upload_hashed("b.bin", data)
    assert read_back() == before
    live = [b for b in blobs(svc) if b.state == "active"]
    assert [(x.ref_count, x.content_hash) for x in live] == [(2, content_hash_bytes(data, 5 * MiB))]
    assert ann.me()["used_bytes"] == bob.me()["used_bytes"] == len(data)
    assert bob.download(b["id"]).content == data
    assert ann.download(a["id"]).content == data


def test_other_block_size_is_another_content_hash(svc: Services, new_uploader: NewUploader) -> None:
    """The content hash is only comparable at one block size: no false match across sizes."""
    ann, bob = new_uploader(), new_uploader()
    data = os.urandom(6 * MiB + 1)
    ann.upload_hashed("a.bin", data, part_size=5 * MiB)
    bob.upload_hashed("b.bin", data, part_size=6 * MiB)
    live = [b for b in blobs(svc) if b.state == "active"]
    if svc.store.kind == "local":  # verified SHA-256 dedups whatever the block size
        assert len(live) == 1
    else:
        assert sorted(b.block_size or 0 for b in live) == [5 * MiB, 6 * MiB]


def test_part_checksums_are_validated(new_uploader: NewUploader) -> None:
    ann = new_uploader()
    data = os.urandom(5 * MiB + 1)
    good = BlockHasher(5 * MiB)
    good.update(data)
    sums = good.block_digests_b64()
    cases = [
        {"part_size": 5 * MiB},  # without the checksums
        {"part_checksums_sha256": sums},  # without the part size
        {"part_size": 5 * MiB, "part_checksums_sha256": sums[:1]},  # too few
        {"part_size": 5 * MiB, "part_checksums_sha256": [sums[0], "bm90IGEgZGlnZXN0"]},
        {"part_size": 1024, "part_checksums_sha256": sums},  # below S3's 5 MiB
    ]
    for fields in cases:
        r = ann.initiate("x.bin", data, **fields)
        assert r.status_code == 422, (fields, r.text)


def test_without_part_checksums_the_object_is_read_back_and_verified(
    svc: Services, new_uploader: NewUploader
) -> None:
    """Older clients: S3 mode reads the object back once (as before) and verifies both."""
    ann = new_uploader()
    data = os.urandom(5 * MiB + 3)
    before = read_back()
    doc = ann.upload("old.bin", data)
    assert doc["current_version"]["checksum_verified"] is True
    read = read_back() - before
    assert read == (len(data) if svc.store.kind == "s3" else 0)
    [blob] = blobs(svc)
    assert blob.verified
    # The read-back hashes the blocks on the way; the local store's join hashes only the file.
    s3 = svc.store.kind == "s3"
    assert blob.content_hash == (content_hash_bytes(data, 5 * MiB) if s3 else None)


def test_job_fills_in_content_hashes_of_older_blobs_in_s3_mode(
    svc: Services, new_uploader: NewUploader
) -> None:
    """Blobs from before migration 0014 have no content hash: the job reads them once."""
    ann = new_uploader()
    data = os.urandom(1000)
    r = ann.api.post(
        "/api/v1/files",
        params={"name": "small.txt"},
        content=data,
        headers={**ann.headers, "x-checksum-sha256": sha256_hex(data)},
    )
    assert r.status_code == 201, r.text
    with svc.database.transaction() as db:
        db.execute(Blob.__table__.update().values(content_hash=None, block_size=None))
    report = verification.verify_blobs(svc)
    [blob] = blobs(svc)
    if svc.store.kind == "s3":
        assert report.content_hashed == 1
        assert blob.content_hash == content_hash_bytes(data, 5 * MiB)
    else:  # local mode deduplicates on the verified SHA-256: nothing to backfill
        assert report.checked == 0 and blob.content_hash is None
    assert blob.verified


def test_job_reads_no_more_than_its_budget(svc: Services, new_uploader: NewUploader) -> None:
    if svc.store.kind != "s3":
        pytest.skip("only S3 uploads leave SHA-256 claims to verify")
    ann = new_uploader()
    for i in range(3):
        ann.upload_hashed(f"{i}.bin", os.urandom(5 * MiB + i))
    first = verification.verify_blobs(svc, budget=6 * MiB)
    assert first.verified == 1 and first.bytes_read <= 6 * MiB
    rest = verification.verify_blobs(svc)
    assert rest.verified == 2
    assert all(b.verified for b in blobs(svc))
