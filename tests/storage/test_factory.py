"""The storage URL picks the backend; anything unclear is refused at start-up."""

from __future__ import annotations

from pathlib import Path

import pytest

from docstore.storage.factory import make_blob_store
from docstore.storage.local import LocalBlobStore
from docstore.storage.s3 import S3BlobStore


def test_file_url_gives_a_local_store(tmp_path: Path) -> None:
    store = make_blob_store(
        f"file://{tmp_path}/my%20blobs", public_url="http://h/", secret_key=b"k"
    )
    assert isinstance(store, LocalBlobStore) and store.kind == "local"
    assert store.root == tmp_path / "my blobs"
    assert store.public_url == "http://h"
    assert (tmp_path / "my blobs" / "objects").is_dir()


def test_s3_url_gives_an_s3_store_without_touching_the_network() -> None:
    url = "s3://some-bucket?endpoint_url=http://127.0.0.1:9&region=eu-west-1"
    store = make_blob_store(url, public_url="http://h", secret_key=b"k")
    assert isinstance(store, S3BlobStore) and store.kind == "s3"
    assert store.bucket == "some-bucket" and store.region == "eu-west-1"
    assert store.client.meta.endpoint_url == "http://127.0.0.1:9"


@pytest.mark.parametrize(
    "url",
    [
        "file://relative/path",
        "file:relative/path",
        "file:///abs/path?x=1",
        "s3://bucket/prefix",
        "s3://bucket?endpoint=http://x",
        "s3://bucket?create_bucket=maybe",
        "s3://",
        "ftp://host/path",
        "/just/a/path",
    ],
)
def test_unclear_storage_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError, match=r"storage URL|s3://|create_bucket"):
        make_blob_store(url, public_url="http://h", secret_key=b"k")


def test_local_store_needs_a_secret(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="secret"):
        make_blob_store(f"file://{tmp_path}", public_url="http://h", secret_key=b"")
