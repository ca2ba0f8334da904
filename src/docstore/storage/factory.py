"""Choose the blob store from the configured storage URL."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from docstore.storage.base import BlobStore
from docstore.storage.local import LocalBlobStore
from docstore.storage.s3 import S3BlobStore


def make_blob_store(storage_url: str, *, public_url: str, secret_key: bytes) -> BlobStore:
    """`file:///abs/path` gives the local store, `s3://BUCKET?...` the S3 one."""
    parts = urlsplit(storage_url)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost") or parts.query or parts.fragment:
            raise ValueError(
                f"storage URL {storage_url!r}: use file:///absolute/path (no host, no query)"
            )
        path = Path(unquote(parts.path))
        if not path.is_absolute():
            raise ValueError(f"storage URL {storage_url!r}: the path must be absolute")
        return LocalBlobStore(path, public_url, secret_key)
    if parts.scheme == "s3":
        return S3BlobStore.from_url(storage_url)
    raise ValueError(
        f"unsupported storage URL {storage_url!r}: expected file:///absolute/path "
        "or s3://BUCKET?endpoint_url=...&region=..."
    )
