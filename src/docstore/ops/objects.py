"""Copying immutable objects between blob stores, only those the target lacks.

A key names one write of bytes that never change (`documents.blobs.new_key`), so an object
present under its key in the target is the same object: an incremental copy only has to
compare key sets. Between two local stores on one file system an object is hard-linked
(no bytes copied; a link appears whole or not at all), else streamed through `put_stream`,
which never leaves a partial object.
"""

from __future__ import annotations

import errno
import hashlib
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from docstore.ops.dbdump import ObjectRef
from docstore.storage.base import BlobStore
from docstore.storage.factory import make_blob_store

CHUNK = 1024 * 1024
# A store used only as a copy target signs no URLs; the local store still wants a key.
_NO_URLS = b"docstore-backup-pool"


@dataclass
class CopyResult:
    """How an incremental copy went."""

    copied: int = 0
    linked: int = 0
    present: int = 0
    copied_bytes: int = 0
    missing: list[str] = field(default_factory=list)  # referenced, but not in the source


def open_store(url: str) -> BlobStore:
    """A blob store for a `file:///path` or `s3://bucket?...` URL, used for copying only."""
    return make_blob_store(url, public_url="http://127.0.0.1", secret_key=_NO_URLS)


def path_of(store: BlobStore, key: str) -> Path | None:
    """The file of `key` when the store keeps objects as local files (for hard links)."""
    object_path: Any = getattr(store, "object_path", None)
    return Path(object_path(key)) if callable(object_path) else None


def keys_in(store: BlobStore) -> set[str]:
    """Every key the store holds (one listing instead of a HEAD per object)."""
    return {info.key for info in store.iter_objects("")}


def _chunks(store: BlobStore, key: str) -> Iterator[bytes]:
    with store.open(key) as f:
        while block := f.read(CHUNK):
            yield block


def _link(source: BlobStore, target: BlobStore, key: str) -> bool:
    """Hard-link the object when both stores are local files on one file system."""
    src, dst = path_of(source, key), path_of(target, key)
    if src is None or dst is None:
        return False
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except FileExistsError:
        return True
    except FileNotFoundError:
        raise KeyError(key) from None
    except OSError as exc:
        if exc.errno in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
            return False
        raise
    return True


def copy_missing(
    source: BlobStore,
    target: BlobStore,
    objects: Iterable[ObjectRef],
    *,
    advance: Callable[[int], None] = lambda _n: None,
) -> CopyResult:
    """Copy to `target` each of `objects` it does not hold yet; `advance(bytes)` per object."""
    result = CopyResult()
    present = keys_in(target)
    for ref in objects:
        if ref.key in present:
            result.present += 1
        else:
            try:
                if _link(source, target, ref.key):
                    result.linked += 1
                else:
                    target.put_stream(ref.key, _chunks(source, ref.key))
                result.copied += 1
                result.copied_bytes += ref.size
            except KeyError:
                result.missing.append(ref.key)
        advance(ref.size)
    return result


def rehash(store: BlobStore, ref: ObjectRef) -> str | None:
    """What is wrong with the stored copy of `ref` (None: its size and SHA-256 match)."""
    digest = hashlib.sha256()
    size = 0
    try:
        for block in _chunks(store, ref.key):
            digest.update(block)
            size += len(block)
    except KeyError:
        return "missing"
    if size != ref.size:
        return f"size {size}, expected {ref.size}"
    if digest.hexdigest() != ref.sha256:
        return "SHA-256 differs"
    return None
