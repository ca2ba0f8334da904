"""One suite for every BlobStore backend, then what only the local store can prove.

The S3 runs use moto, which enforces no signature, expiry or checksum (S3-TESTING.md):
those guarantees are tested on the local store, whose endpoints docstore serves itself.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import httpx
import pytest

from docstore.storage.base import (
    BlobStore,
    PartInfo,
    SignedRequest,
    StorageError,
    normalize_etag,
)
from docstore.storage.local import LocalBlobStore
from docstore.storage.local import multipart as local_multipart
from docstore.storage.local.multipart import PartBusy
from docstore.storage.s3 import S3BlobStore
from tests.storage.conftest import SECRET, StorageServer

MiB = 1024 * 1024
NASTY_NAME = 'a"b\r\nc ünï.txt'


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    """A plain HTTP client that ignores proxy settings (everything is on loopback)."""
    with httpx.Client(trust_env=False, timeout=60) as client:
        yield client


def md5_hex(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def sha256_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def send(http: httpx.Client, request: SignedRequest, data: bytes) -> httpx.Response:
    """Send a part the way a client must: the signed method, URL and headers."""
    return http.request(request.method, request.url, content=data, headers=request.headers)


def upload_parts(
    http: httpx.Client, store: BlobStore, key: str, upload_id: str, parts: list[bytes]
) -> list[PartInfo]:
    """PUT each part to its signed URL; the parts as the client reports them back."""
    reported = []
    for number, data in enumerate(parts, start=1):
        response = send(http, store.sign_part(key, upload_id, number, 300), data)
        assert response.status_code == 200, response.text
        reported.append(PartInfo(number, response.headers["etag"]))
    return reported


def filename_star(disposition: str) -> str:
    match = re.search(r"filename\*=UTF-8''([^;\s]+)", disposition)
    assert match, disposition
    return unquote(match.group(1), errors="strict")


def with_query(url: str, **changes: str | None) -> str:
    """The URL with query parameters replaced (None removes one)."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    for name, value in changes.items():
        if value is None:
            query.pop(name, None)
        else:
            query[name] = value
    return urlunsplit(parts._replace(query=urlencode(query)))


# -- every backend ---------------------------------------------------------------------


def test_objects_round_trip(store: BlobStore) -> None:
    chunks = [b"hello ", b"", b"world ", bytes(range(256)) * 1000]
    data = b"".join(chunks)
    assert store.put_stream("docs/a", iter(chunks)) == len(data)
    assert store.put_stream("docs/b", [b"first"]) == 5
    assert store.put_stream("docs/b", [b"second"]) == 6  # replaces
    assert store.put_stream("other/c", [b"y"]) == 1

    with store.open("docs/a") as f:
        assert f.read() == data
    with store.open("docs/b") as f:
        assert f.read() == b"second"
    info = store.head("docs/a")
    assert info is not None and (info.key, info.size) == ("docs/a", len(data))
    assert info.last_modified is None or info.last_modified.tzinfo is not None

    assert [o.key for o in store.iter_objects("docs/")] == ["docs/a", "docs/b"]
    assert [o.key for o in store.iter_objects("do")] == ["docs/a", "docs/b"]
    assert [o.key for o in store.iter_objects("docs/b")] == ["docs/b"]
    everything = {o.key: o.size for o in store.iter_objects()}
    assert everything == {"docs/a": len(data), "docs/b": 6, "other/c": 1}

    store.delete("docs/a")
    assert store.head("docs/a") is None
    with pytest.raises(KeyError):
        store.open("docs/a")
    assert [o.key for o in store.iter_objects("docs/")] == ["docs/b"]


def test_delete_of_missing_key_is_fine(store: BlobStore) -> None:
    store.delete("docs/never-written")
    store.delete("docs/never-written")
    assert store.head("docs/never-written") is None


def test_large_put_stream_is_byte_identical(store: BlobStore) -> None:
    data = os.urandom(17 * MiB)  # several of the S3 store's 8 MiB server-side parts
    chunks = (data[i : i + MiB] for i in range(0, len(data), MiB))
    assert store.put_stream("docs/large", chunks) == len(data)
    with store.open("docs/large") as f:
        assert hashlib.sha256(f.read()).digest() == hashlib.sha256(data).digest()
    assert store.list_multipart_uploads() == []


def test_failed_put_stream_leaves_nothing(store: BlobStore) -> None:
    def chunks() -> Iterator[bytes]:
        yield os.urandom(9 * MiB)  # past one server-side part on S3
        raise RuntimeError("the client went away")

    with pytest.raises(RuntimeError, match="went away"):
        store.put_stream("docs/broken", chunks())
    assert store.head("docs/broken") is None
    assert list(store.iter_objects()) == []
    assert store.list_multipart_uploads() == []


def test_multipart_through_signed_urls(store: BlobStore, http: httpx.Client) -> None:
    key = "blobs/multipart"
    parts = [os.urandom(5 * MiB), os.urandom(5 * MiB), os.urandom(1024)]
    whole = b"".join(parts)
    upload_id = store.create_multipart(key, "text/plain")
    assert upload_id in [u.upload_id for u in store.list_multipart_uploads("blobs/")]

    reported = upload_parts(http, store, key, upload_id, parts)
    etags = [normalize_etag(p.etag) for p in reported]
    if store.kind == "local":  # opaque: a new token per write of a part (storage/local.py)
        assert len(set(etags)) == len(parts) and all(re.fullmatch("[0-9a-f]{32}", e) for e in etags)
    else:
        assert etags == [md5_hex(p) for p in parts]
    listed = store.list_parts(key, upload_id)
    assert [(p.part_number, p.etag, p.size) for p in listed] == [
        (n, etag, len(p)) for n, (etag, p) in enumerate(zip(etags, parts, strict=True), start=1)
    ]

    digest = store.complete_multipart(key, upload_id, reported)
    # The local store hashes while joining; S3 cannot tell the whole file's SHA-256.
    assert digest == (hashlib.sha256(whole).hexdigest() if store.kind == "local" else None)
    assert upload_id not in [u.upload_id for u in store.list_multipart_uploads()]
    info = store.head(key)
    assert info is not None and info.size == len(whole)

    response = http.get(store.sign_download(key, 60, NASTY_NAME, "text/plain"))
    assert response.status_code == 200
    assert hashlib.sha256(response.content).digest() == hashlib.sha256(whole).digest()
    assert response.headers["content-type"].startswith("text/plain")
    assert response.headers["cache-control"] == "private, no-store"
    disposition = response.headers["content-disposition"]
    assert disposition.startswith("attachment;")
    assert disposition.isascii() and "\r" not in disposition and "\n" not in disposition
    fallback = re.search(r'filename="([^"\\]*)"', disposition)
    assert fallback and fallback.group(1) == "a_b__c uni.txt"
    assert filename_star(disposition) == NASTY_NAME


def test_complete_with_listed_parts(store: BlobStore, http: httpx.Client) -> None:
    key = "blobs/listed"
    parts = [os.urandom(5 * MiB), b"tail"]
    upload_id = store.create_multipart(key)
    upload_parts(http, store, key, upload_id, parts)
    store.complete_multipart(key, upload_id, store.list_parts(key, upload_id))
    with store.open(key) as f:
        assert f.read() == b"".join(parts)


def test_parts_signed_with_checksums(store: BlobStore, http: httpx.Client) -> None:
    key = "blobs/checksummed"
    parts = [os.urandom(5 * MiB), b"last part"]
    upload_id = store.create_multipart(key, checksum_sha256=True)
    reported = []
    for number, data in enumerate(parts, start=1):
        request = store.sign_part(key, upload_id, number, 300, sha256_b64(data))
        assert request.headers == {"x-amz-checksum-sha256": sha256_b64(data)}
        response = send(http, request, data)
        assert response.status_code == 200, response.text
        reported.append(PartInfo(number, response.headers["etag"]))
    # The client reports ETags only; the store supplies the part checksums S3 wants back.
    store.complete_multipart(key, upload_id, reported)
    with store.open(key) as f:
        assert f.read() == b"".join(parts)


def test_complete_refuses_parts_that_do_not_match(store: BlobStore, http: httpx.Client) -> None:
    key = "blobs/mismatch"
    parts = [os.urandom(5 * MiB), b"end"]
    upload_id = store.create_multipart(key)
    reported = upload_parts(http, store, key, upload_id, parts)

    wrong_etag = [reported[0], PartInfo(2, md5_hex(b"other"))]
    with pytest.raises(StorageError):
        store.complete_multipart(key, upload_id, wrong_etag)
    with pytest.raises(StorageError):
        store.complete_multipart(key, upload_id, [*reported, PartInfo(3, md5_hex(b"x"))])
    with pytest.raises(StorageError):
        store.complete_multipart(key, upload_id, [])
    assert store.head(key) is None

    # A refused complete leaves the upload as it was: the right parts still complete it.
    store.complete_multipart(key, upload_id, reported)
    with store.open(key) as f:
        assert f.read() == b"".join(parts)


def test_complete_refuses_small_parts_before_the_last(store: BlobStore, http: httpx.Client) -> None:
    key = "blobs/small-parts"
    upload_id = store.create_multipart(key)
    reported = upload_parts(http, store, key, upload_id, [b"tiny", b"tiny too"])
    with pytest.raises(StorageError):
        store.complete_multipart(key, upload_id, reported)
    assert store.head(key) is None
    store.abort_multipart(key, upload_id)


def test_abort_leaves_nothing(store: BlobStore, http: httpx.Client) -> None:
    key = "blobs/aborted"
    upload_id = store.create_multipart(key)
    reported = upload_parts(http, store, key, upload_id, [os.urandom(1000)])

    store.abort_multipart(key, upload_id)
    assert store.list_multipart_uploads() == []
    assert store.head(key) is None
    assert list(store.iter_objects()) == []
    with pytest.raises(StorageError):
        store.list_parts(key, upload_id)
    with pytest.raises(StorageError):
        store.complete_multipart(key, upload_id, reported)
    store.abort_multipart(key, upload_id)  # again: still fine


def test_list_multipart_uploads_shows_a_started_upload(store: BlobStore) -> None:
    upload_id = store.create_multipart("blobs/started")
    other_id = store.create_multipart("elsewhere/started")
    uploads = store.list_multipart_uploads("blobs/")
    assert [(u.key, u.upload_id) for u in uploads] == [("blobs/started", upload_id)]
    initiated = uploads[0].initiated
    assert initiated is not None and initiated.utcoffset() == timedelta(0)
    if store.kind == "local":  # moto reports the same fixed date for every upload
        assert abs(initiated - datetime.now(UTC)) < timedelta(minutes=5)
    everything = {u.upload_id for u in store.list_multipart_uploads()}
    assert everything == {upload_id, other_id}
    store.abort_multipart("blobs/started", upload_id)
    store.abort_multipart("elsewhere/started", other_id)


def test_range_requests_on_a_signed_download(store: BlobStore, http: httpx.Client) -> None:
    data = os.urandom(64 * 1024)
    store.put_stream("docs/ranged", [data])
    url = store.sign_download("docs/ranged", 60, "ranged.bin")

    response = http.get(url, headers={"Range": "bytes=100-199"})
    assert response.status_code == 206
    assert response.content == data[100:200]
    assert response.headers["content-range"] == f"bytes 100-199/{len(data)}"

    response = http.get(url, headers={"Range": "bytes=-10"})
    assert response.status_code == 206 and response.content == data[-10:]

    response = http.get(url, headers={"Range": f"bytes={len(data)}-"})
    assert response.status_code == 416


def test_signed_download_of_a_missing_object_is_refused(
    store: BlobStore, http: httpx.Client
) -> None:
    response = http.get(store.sign_download("docs/missing", 60, "x.txt"))
    # S3 says 403 rather than 404 to callers who may not list the bucket (moto does too).
    assert response.status_code in ({404} if store.kind == "local" else {403, 404})


def test_check_answers(store: BlobStore) -> None:
    assert store.check() is True


def test_every_backend_states_its_presign_limit_and_housekeeps(store: BlobStore) -> None:
    """uploads asks the protocol, never a backend module: the signed-URL limit and the
    periodic housekeeping hook (a no-op on S3) that removes only a backend's leftovers."""
    assert isinstance(store, BlobStore)
    assert store.max_presign_seconds == 7 * 24 * 3600
    store.put_stream("docs/kept", iter([b"kept"]))
    assert store.housekeeping(0) == 0
    assert store.head("docs/kept") is not None


def test_s3_check_is_false_for_a_missing_bucket(moto_endpoint: str) -> None:
    store = S3BlobStore("docstore-test-never-created", endpoint_url=moto_endpoint)
    assert store.check() is False


# -- the local store: what moto cannot prove -------------------------------------------


def assert_problem(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status and body["code"] == code and body["type"] == "about:blank"
    assert body["title"] and body["detail"]


def test_tampered_part_urls_are_refused(local_store: LocalBlobStore, http: httpx.Client) -> None:
    key = "blobs/tampered"
    upload_id = local_store.create_multipart(key)
    request = local_store.sign_part(key, upload_id, 1, 300)
    query = dict(parse_qsl(urlsplit(request.url).query))
    signature = query["signature"]
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    for odd_number in ("0", "10001", "²", "1x"):
        odd = request.url.replace(f"/{upload_id}/1?", f"/{upload_id}/{odd_number}?")
        assert_problem(http.put(odd, content=b"data"), 404, "not_found")
    tampered = [
        request.url.replace(f"/{upload_id}/1?", f"/{upload_id}/2?"),
        with_query(request.url, signature=flipped),
        with_query(request.url, expires=str(int(query["expires"]) + 3600)),
        with_query(request.url, signature=None),
        with_query(request.url, expires="soon"),
        with_query(request.url, checksum_sha256=sha256_b64(b"data")),
    ]
    for url in tampered:
        assert_problem(http.put(url, content=b"data"), 403, "forbidden")
    assert local_store.list_parts(key, upload_id) == []
    assert http.put(request.url, content=b"data").status_code == 200


def test_part_url_signed_with_another_key_is_refused(
    local_store: LocalBlobStore, storage_server: StorageServer, http: httpx.Client
) -> None:
    upload_id = local_store.create_multipart("blobs/k")
    impostor = LocalBlobStore(local_store.root, storage_server.url, b"another secret")
    request = impostor.sign_part("blobs/k", upload_id, 1, 300)
    assert_problem(http.put(request.url, content=b"data"), 403, "forbidden")


def test_expired_part_url_is_refused(
    local_store: LocalBlobStore, storage_server: StorageServer, http: httpx.Client
) -> None:
    upload_id = local_store.create_multipart("blobs/late")
    an_hour_ago = LocalBlobStore(
        local_store.root, storage_server.url, SECRET, clock=lambda: time.time() - 3600
    )
    request = an_hour_ago.sign_part("blobs/late", upload_id, 1, 60)
    response = http.put(request.url, content=b"data")
    assert_problem(response, 403, "forbidden")
    assert "expired" in response.json()["detail"]
    assert local_store.list_parts("blobs/late", upload_id) == []


def test_tampered_or_expired_download_urls_are_refused(
    local_store: LocalBlobStore, storage_server: StorageServer, http: httpx.Client
) -> None:
    local_store.put_stream("docs/secret", [b"secret"])
    local_store.put_stream("docs/public", [b"public"])
    url = local_store.sign_download("docs/public", 60, "public.txt", "text/plain")
    assert http.get(url).content == b"public"

    tampered = [
        with_query(url, key="docs/secret"),
        with_query(url, filename="other.txt"),
        with_query(url, content_type="text/html"),
        with_query(url, expires=str(int(time.time()) + 86400)),
        with_query(url, signature=None),
    ]
    for bad in tampered:
        assert_problem(http.get(bad), 403, "forbidden")

    an_hour_ago = LocalBlobStore(
        local_store.root, storage_server.url, SECRET, clock=lambda: time.time() - 3600
    )
    expired = an_hour_ago.sign_download("docs/public", 60, "public.txt")
    response = http.get(expired)
    assert_problem(response, 403, "forbidden")
    assert "expired" in response.json()["detail"]
    assert http.head(expired).status_code == 403


def test_part_not_matching_its_signed_checksum_is_refused(
    local_store: LocalBlobStore, http: httpx.Client
) -> None:
    key = "blobs/checksum"
    good, bad = b"the bytes that were promised", b"something else entirely"
    upload_id = local_store.create_multipart(key, checksum_sha256=True)
    request = local_store.sign_part(key, upload_id, 1, 300, sha256_b64(good))

    assert_problem(send(http, request, bad), 400, "bad_digest")
    assert_problem(http.put(request.url, content=good), 400, "bad_digest")  # header missing
    wrong_header = {"x-amz-checksum-sha256": sha256_b64(bad)}
    assert_problem(http.put(request.url, content=bad, headers=wrong_header), 400, "bad_digest")
    assert local_store.list_parts(key, upload_id) == []
    assert list((local_store.root / "tmp").iterdir()) == []

    assert send(http, request, good).status_code == 200
    assert [p.size for p in local_store.list_parts(key, upload_id)] == [len(good)]


def test_checksum_upload_refuses_parts_signed_without_one(
    local_store: LocalBlobStore, http: httpx.Client
) -> None:
    upload_id = local_store.create_multipart("blobs/strict", checksum_sha256=True)
    request = local_store.sign_part("blobs/strict", upload_id, 1, 300)
    assert_problem(send(http, request, b"data"), 400, "bad_request")
    assert local_store.list_parts("blobs/strict", upload_id) == []


def test_unsigned_checksum_header_is_still_checked(
    local_store: LocalBlobStore, http: httpx.Client
) -> None:
    upload_id = local_store.create_multipart("blobs/unsigned")
    request = local_store.sign_part("blobs/unsigned", upload_id, 1, 300)
    header = {"x-amz-checksum-sha256": sha256_b64(b"other")}
    assert_problem(http.put(request.url, content=b"data", headers=header), 400, "bad_digest")
    assert local_store.list_parts("blobs/unsigned", upload_id) == []


def test_part_for_an_aborted_upload_is_404(local_store: LocalBlobStore, http: httpx.Client) -> None:
    upload_id = local_store.create_multipart("blobs/gone")
    request = local_store.sign_part("blobs/gone", upload_id, 1, 300)
    local_store.abort_multipart("blobs/gone", upload_id)
    assert_problem(send(http, request, b"data"), 404, "not_found")
    assert not (local_store.root / "multipart" / upload_id).exists()
    assert list((local_store.root / "tmp").iterdir()) == []


def test_parts_land_in_place_and_complete_renames_without_copying(
    local_store: LocalBlobStore, http: httpx.Client
) -> None:
    key = "blobs/in-place"
    parts = [os.urandom(5 * MiB), os.urandom(5 * MiB), b"tail"]
    upload_id = local_store.create_multipart(key, part_size=5 * MiB, size=10 * MiB + 4)
    data_file = local_store.root / "multipart" / upload_id / "data"
    # Sent out of order: each part goes to its own offset of the one file.
    reported = {}
    for number in (3, 1, 2):
        request = local_store.sign_part(key, upload_id, number, 300)
        response = send(http, request, parts[number - 1])
        assert response.status_code == 200, response.text
        reported[number] = PartInfo(number, response.headers["etag"])
    inode = data_file.stat().st_ino
    digest = local_store.complete_multipart(key, upload_id, [reported[n] for n in (1, 2, 3)])
    assert digest == hashlib.sha256(b"".join(parts)).hexdigest()
    assert local_store.object_path(key).stat().st_ino == inode  # renamed, not copied
    with local_store.open(key) as f:
        assert f.read() == b"".join(parts)


def write_part(store: LocalBlobStore, upload_id: str, number: int, data: bytes) -> PartInfo:
    writer = store.open_part_writer(upload_id, number)
    writer.write(data)
    return PartInfo(number, writer.commit())


def carried(store: LocalBlobStore, upload_id: str) -> int:
    """How many bytes of the upload hash_ahead has hashed (0: none, or nothing kept)."""
    prefix = store._prefixes.get(upload_id)
    return prefix.size if prefix is not None else 0


def test_complete_hashes_only_what_hash_ahead_has_not(local_store: LocalBlobStore) -> None:
    key, size = "blobs/ahead", 5 * MiB
    parts = [os.urandom(size), os.urandom(size), os.urandom(size), b"tail"]
    upload_id = local_store.create_multipart(key, part_size=size)
    reported = {2: write_part(local_store, upload_id, 2, parts[1])}
    local_store.hash_ahead(upload_id)
    assert carried(local_store, upload_id) == 0  # part 1 is missing: nothing follows on
    reported[1] = write_part(local_store, upload_id, 1, parts[0])
    local_store.hash_ahead(upload_id)
    assert carried(local_store, upload_id) == 2 * size  # parts 1 and 2, now in order
    reported[4] = write_part(local_store, upload_id, 4, parts[3])
    reported[3] = write_part(local_store, upload_id, 3, parts[2])
    local_store.hash_ahead(upload_id)
    assert carried(local_store, upload_id) == 3 * size  # the short last part is left

    # complete reads only the tail: the carried prefix is what the digest starts from.
    digest = local_store.complete_multipart(key, upload_id, [reported[n] for n in (1, 2, 3, 4)])
    assert digest == hashlib.sha256(b"".join(parts)).hexdigest()
    assert upload_id not in local_store._prefixes
    with local_store.open(key) as f:
        assert f.read() == b"".join(parts)


def test_a_part_rewritten_after_hash_ahead_is_hashed_again(local_store: LocalBlobStore) -> None:
    key, size = "blobs/rewritten", 5 * MiB
    first, second = os.urandom(size), os.urandom(size)
    upload_id = local_store.create_multipart(key, part_size=size)
    write_part(local_store, upload_id, 1, first)
    local_store.hash_ahead(upload_id)
    assert carried(local_store, upload_id) == size
    replaced = os.urandom(size)
    part1 = write_part(local_store, upload_id, 1, replaced)  # a retry: a new ETag
    part2 = write_part(local_store, upload_id, 2, second)
    digest = local_store.complete_multipart(key, upload_id, [part1, part2])
    assert digest == hashlib.sha256(replaced + second).hexdigest()


def test_hash_ahead_past_the_parts_joined_is_not_used(local_store: LocalBlobStore) -> None:
    key, size = "blobs/fewer", 5 * MiB
    parts = [os.urandom(size) for _ in range(3)]
    upload_id = local_store.create_multipart(key, part_size=size)
    reported = [write_part(local_store, upload_id, n, p) for n, p in enumerate(parts, start=1)]
    local_store.hash_ahead(upload_id)
    assert carried(local_store, upload_id) == 3 * size
    # Joining two of the three parts: the prefix hashed a part that is not in the object.
    digest = local_store.complete_multipart(key, upload_id, reported[:2])
    assert digest == hashlib.sha256(b"".join(parts[:2])).hexdigest()


def test_hash_ahead_racing_complete_and_rewrites_never_gives_a_wrong_digest(
    local_store: LocalBlobStore,
) -> None:
    """Threads carrying the prefix forward while parts are rewritten and complete runs:
    whatever interleaving happens, the digest is the SHA-256 of the object's bytes."""
    size = 5 * MiB
    for round_ in range(4):  # bounded: a few interleavings, each different by timing
        key = f"blobs/race-{round_}"
        upload_id = local_store.create_multipart(key, part_size=size)
        parts = {n: write_part(local_store, upload_id, n, os.urandom(size)) for n in (1, 2, 3)}
        stop = threading.Event()

        def follow(upload_id: str = upload_id, stop: threading.Event = stop) -> None:
            while not stop.is_set():
                local_store.hash_ahead(upload_id)

        followers = [threading.Thread(target=follow) for _ in range(2)]
        for t in followers:
            t.start()
        try:
            for n in (2, 1, 3, 2):  # rewrites while the followers read
                parts[n] = write_part(local_store, upload_id, n, os.urandom(size))
            digest = local_store.complete_multipart(key, upload_id, [parts[n] for n in (1, 2, 3)])
        finally:
            stop.set()
            for t in followers:
                t.join(10)
        with local_store.open(key) as f:
            assert digest == hashlib.sha256(f.read()).hexdigest()


def test_hash_ahead_keeps_a_bounded_number_of_uploads(
    local_store: LocalBlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(local_multipart, "MAX_PREFIXES", 2)
    uploads = [local_store.create_multipart(f"blobs/many-{i}") for i in range(4)]
    for upload_id in uploads:
        write_part(local_store, upload_id, 1, b"x" * MiB)
        local_store.hash_ahead(upload_id)
    assert list(local_store._prefixes) == uploads[2:]  # the oldest were dropped
    local_store.abort_multipart("blobs/many-3", uploads[3])
    assert list(local_store._prefixes) == uploads[2:3]
    # An upload whose prefix was dropped still completes, hashed from the start.
    part = PartInfo(1, local_store.list_parts("blobs/many-0", uploads[0])[0].etag)
    digest = local_store.complete_multipart("blobs/many-0", uploads[0], [part])
    assert digest == hashlib.sha256(b"x" * MiB).hexdigest()


def test_a_part_never_writes_past_its_place(
    local_store: LocalBlobStore, http: httpx.Client
) -> None:
    key = "blobs/overflow"
    upload_id = local_store.create_multipart(key, part_size=5 * MiB, size=5 * MiB + 10)
    data_file = local_store.root / "multipart" / upload_id / "data"
    first = local_store.sign_part(key, upload_id, 1, 300)
    # Declared too big: refused before a byte is read.
    assert_problem(send(http, first, os.urandom(5 * MiB + 1)), 413, "too_large")
    last = local_store.sign_part(key, upload_id, 2, 300)
    # Streamed without a length (chunked): refused once it passes the declared size.
    chunks = iter([b"x" * 6, b"y" * (2 * MiB)])
    response = http.put(last.url, content=chunks)
    assert_problem(response, 413, "too_large")
    assert local_store.list_parts(key, upload_id) == []
    assert data_file.stat().st_size <= 5 * MiB + 10
    assert send(http, last, b"0123456789").status_code == 200
    assert [p.size for p in local_store.list_parts(key, upload_id)] == [10]


def test_one_part_is_written_by_one_request_at_a_time(local_store: LocalBlobStore) -> None:
    upload_id = local_store.create_multipart("blobs/busy")
    writer = local_store.open_part_writer(upload_id, 1)
    with pytest.raises(PartBusy):
        local_store.open_part_writer(upload_id, 1)
    other = local_store.open_part_writer(upload_id, 2)  # another part is fine
    other.discard()
    writer.write(b"first")
    etag = writer.commit()
    again = local_store.open_part_writer(upload_id, 1)  # a retry starts over
    assert local_store.list_parts("blobs/busy", upload_id) == []
    again.write(b"second")
    assert again.commit() != etag
    assert [p.size for p in local_store.list_parts("blobs/busy", upload_id)] == [6]


def test_complete_waits_for_parts_in_flight(
    local_store: LocalBlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(local_multipart, "COMPLETE_WAIT_SECONDS", 0.2)
    upload_id = local_store.create_multipart("blobs/in-flight")
    writer = local_store.open_part_writer(upload_id, 1)
    writer.write(b"done")
    etag = writer.commit()
    late = local_store.open_part_writer(upload_id, 2)
    with pytest.raises(StorageError, match="still being received"):
        local_store.complete_multipart("blobs/in-flight", upload_id, [PartInfo(1, etag)])
    late.discard()
    local_store.complete_multipart("blobs/in-flight", upload_id, [PartInfo(1, etag)])
    with local_store.open("blobs/in-flight") as f:
        assert f.read() == b"done"
    with pytest.raises(KeyError):  # the upload is gone: no part can join it now
        local_store.open_part_writer(upload_id, 2)


def test_a_part_finishing_after_abort_is_not_kept(local_store: LocalBlobStore) -> None:
    upload_id = local_store.create_multipart("blobs/race")
    writer = local_store.open_part_writer(upload_id, 1)
    writer.write(b"arriving while the upload is aborted")
    local_store.abort_multipart("blobs/race", upload_id)
    with pytest.raises(KeyError):
        writer.commit()
    assert list((local_store.root / "tmp").iterdir()) == []
    assert list((local_store.root / "multipart").iterdir()) == []


@pytest.mark.parametrize(
    "key", ["../x", "a/../../x", "a/..", "/etc/passwd", "a\\b", "a\x00b", "", "a//b", "./a", "a/"]
)
def test_keys_that_could_escape_root_are_refused(
    local_store: LocalBlobStore, tmp_path: Path, key: str
) -> None:
    with pytest.raises(ValueError, match="invalid storage key"):
        local_store.put_stream(key, [b"x"])
    with pytest.raises(ValueError, match="invalid storage key"):
        local_store.create_multipart(key)
    with pytest.raises(ValueError, match="invalid storage key"):
        local_store.sign_download(key, 60, "x")
    with pytest.raises(ValueError, match="invalid storage key"):
        local_store.open(key)
    assert [p.name for p in tmp_path.iterdir()] == ["blobs"]
    assert list(local_store.iter_objects()) == []


def test_download_headers_and_head(local_store: LocalBlobStore, http: httpx.Client) -> None:
    local_store.put_stream("docs/page", [b"<script>alert(1)</script>"])
    url = local_store.sign_download("docs/page", 60, "page.html", "text/html")
    response = http.get(url)
    assert response.status_code == 200
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "private, no-store"
    assert response.headers["content-type"] == "text/html"
    assert response.headers["content-disposition"].startswith("attachment;")

    head = http.head(url)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == "25"

    # A content type that would break the header is served as opaque bytes.
    odd = local_store.sign_download("docs/page", 60, "page", "text/html\r\nX-Evil: 1")
    assert http.get(odd).headers["content-type"] == "application/octet-stream"


def test_storage_endpoints_serve_only_a_local_store(
    s3_store: BlobStore, storage_server: StorageServer, http: httpx.Client
) -> None:
    assert storage_server.app.state.blob_store is s3_store
    url = f"{storage_server.url}/storage/objects?key=docs/x&expires=1&signature=x"
    assert_problem(http.get(url), 404, "not_found")


def test_failed_writes_leave_no_temp_files(local_store: LocalBlobStore) -> None:
    def chunks() -> Iterator[bytes]:
        yield b"partial"
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        local_store.put_stream("docs/partial", chunks())
    assert list((local_store.root / "tmp").iterdir()) == []
    assert local_store.head("docs/partial") is None


def test_purge_stale_tmp_removes_only_old_leftovers(local_store: LocalBlobStore) -> None:
    old, fresh = local_store.root / "tmp" / "put-old", local_store.root / "tmp" / "put-fresh"
    old.write_bytes(b"left by a crash")
    fresh.write_bytes(b"being written")
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    assert local_store.purge_stale_tmp(3600) == 1
    assert not old.exists() and fresh.exists()


def test_housekeeping_is_the_local_stores_tmp_purge(local_store: LocalBlobStore) -> None:
    old = local_store.root / "tmp" / "put-old"
    old.write_bytes(b"left by a crash")
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    assert local_store.housekeeping(3600) == 1
    assert not old.exists()


def test_check_reports_a_root_it_cannot_write(local_store: LocalBlobStore) -> None:
    assert local_store.check() is True
    tmp = local_store.root / "tmp"
    tmp.rmdir()
    tmp.write_bytes(b"")  # a file where the directory should be: works even as root
    assert local_store.check() is False
