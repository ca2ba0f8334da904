"""What only a real S3 can prove about S3BlobStore's URLs, on LocalStack (moto enforces none of it).

For the local store the same guarantees are tested in test_conformance.py; here S3 itself
must refuse a tampered or expired part URL or download URL, and a part whose bytes do not
match the SHA-256 signed into its URL. Each refusal is paired with the untampered request
succeeding, so a server that refused everything would fail these tests too.
"""

from __future__ import annotations

import base64
import hashlib
import os
import time
from collections.abc import Iterator
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
import pytest

from docstore.storage.base import PartInfo, SignedRequest
from docstore.storage.s3 import S3BlobStore
from tests.fixtures.s3 import unique_bucket

pytestmark = pytest.mark.xdist_group("localstack")

MiB = 1024 * 1024


@pytest.fixture
def store(localstack_endpoint: str) -> S3BlobStore:
    """An S3 store on a fresh bucket of the session's LocalStack."""
    return S3BlobStore(
        unique_bucket(), endpoint_url=localstack_endpoint, region="us-east-1", create_bucket=True
    )


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(trust_env=False, timeout=60) as client:
        yield client


def sha256_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def with_query(url: str, **changes: str | None) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    for name, value in changes.items():
        if value is None:
            query.pop(name, None)
        else:
            query[name] = value
    return urlunsplit(parts._replace(query=urlencode(query)))


def flipped(signature: str) -> str:
    return ("0" if signature[0] != "0" else "1") + signature[1:]


def send(http: httpx.Client, request: SignedRequest, data: bytes, **headers: str) -> httpx.Response:
    return http.request(
        request.method, request.url, content=data, headers={**request.headers, **headers}
    )


def test_multipart_and_download_work_on_localstack(store: S3BlobStore, http: httpx.Client) -> None:
    parts = [os.urandom(5 * MiB), b"tail"]
    upload_id = store.create_multipart("blobs/ok")
    reported = []
    for n, data in enumerate(parts, start=1):
        r = send(http, store.sign_part("blobs/ok", upload_id, n, 60), data)
        assert r.status_code == 200, r.text
        reported.append(PartInfo(n, r.headers["etag"]))
    store.complete_multipart("blobs/ok", upload_id, reported)
    r = http.get(store.sign_download("blobs/ok", 60, "ok.bin"))
    assert r.status_code == 200 and r.content == b"".join(parts)


def test_tampered_part_urls_are_refused(store: S3BlobStore, http: httpx.Client) -> None:
    upload_id = store.create_multipart("blobs/tampered")
    request = store.sign_part("blobs/tampered", upload_id, 1, 300)
    query = dict(parse_qsl(urlsplit(request.url).query))
    tampered = [
        with_query(request.url, **{"X-Amz-Signature": flipped(query["X-Amz-Signature"])}),
        with_query(request.url, partNumber="2"),
        with_query(request.url, **{"X-Amz-Expires": "604800"}),
        with_query(request.url, **{"X-Amz-Signature": None}),
        request.url.replace("/blobs/tampered?", "/blobs/elsewhere?"),
    ]
    for url in tampered:
        r = http.put(url, content=b"data")
        # 403 SignatureDoesNotMatch; 400 when the signature parameter is missing altogether.
        assert r.status_code in (400, 403), (url, r.status_code, r.text)
        assert b"SignatureDoesNotMatch" in r.content or b"AuthorizationQuery" in r.content, r.text
    assert store.list_parts("blobs/tampered", upload_id) == []
    assert http.put(request.url, content=b"data").status_code == 200
    assert [p.part_number for p in store.list_parts("blobs/tampered", upload_id)] == [1]
    store.abort_multipart("blobs/tampered", upload_id)


def test_expired_part_url_is_refused(store: S3BlobStore, http: httpx.Client) -> None:
    upload_id = store.create_multipart("blobs/late")
    request = store.sign_part("blobs/late", upload_id, 1, 1)
    fresh = store.sign_part("blobs/late", upload_id, 1, 300)
    time.sleep(2.5)
    r = http.put(request.url, content=b"data")
    assert r.status_code == 403, r.text
    assert store.list_parts("blobs/late", upload_id) == []
    assert http.put(fresh.url, content=b"data").status_code == 200
    store.abort_multipart("blobs/late", upload_id)


def test_tampered_or_expired_download_urls_are_refused(
    store: S3BlobStore, http: httpx.Client
) -> None:
    store.put_stream("blobs/public", [b"public"])
    store.put_stream("blobs/secret", [b"<the other object's bytes>"])
    url = store.sign_download("blobs/public", 300, "public.txt", "text/plain")
    short = store.sign_download("blobs/public", 1, "public.txt", "text/plain")
    query = dict(parse_qsl(urlsplit(url).query))
    tampered = [
        url.replace("/blobs/public?", "/blobs/secret?"),
        with_query(url, **{"X-Amz-Signature": flipped(query["X-Amz-Signature"])}),
        with_query(url, **{"response-content-disposition": "inline"}),
        with_query(url, **{"response-content-type": "text/html"}),
        with_query(url, **{"X-Amz-Expires": "604800"}),
    ]
    for bad in tampered:
        r = http.get(bad)
        assert r.status_code == 403, (bad, r.status_code)
        assert b"other object" not in r.content
    assert http.get(url).content == b"public"
    time.sleep(2.5)
    assert http.get(short).status_code == 403


def test_part_not_matching_its_signed_checksum_is_refused(
    store: S3BlobStore, http: httpx.Client
) -> None:
    key = "blobs/checksummed"
    good, bad = os.urandom(1024), os.urandom(1024)
    upload_id = store.create_multipart(key, checksum_sha256=True)
    request = store.sign_part(key, upload_id, 1, 300, sha256_b64(good))
    assert request.headers == {"x-amz-checksum-sha256": sha256_b64(good)}

    r = send(http, request, bad)
    assert r.status_code == 400 and b"BadDigest" in r.content, r.text
    # The checksum header is signed: leaving it out or changing it breaks the signature.
    assert http.put(request.url, content=good).status_code == 403
    other = {"x-amz-checksum-sha256": sha256_b64(bad)}
    assert send(http, request, bad, **other).status_code == 403
    assert store.list_parts(key, upload_id) == []

    r = send(http, request, good)
    assert r.status_code == 200, r.text
    store.complete_multipart(key, upload_id, [PartInfo(1, r.headers["etag"])])
    with store.open(key) as f:
        assert f.read() == good
