"""LocalBlobStore.put_many (POST /files/batch): many small objects, fsynced together."""

from __future__ import annotations

import os

from docstore.storage.base import StorageError
from docstore.storage.local import LocalBlobStore


def test_put_many_writes_every_object_and_leaves_no_temp_file(local_store: LocalBlobStore) -> None:
    items = [(f"blobs/{n:032x}", os.urandom(n * 7)) for n in range(40)]
    assert local_store.put_many(items) == [None] * len(items)
    for key, data in items:
        with local_store.open(key) as f:
            assert f.read() == data
    assert list((local_store.root / "tmp").iterdir()) == []


def test_put_many_failing_object_fails_alone_and_leaves_no_temp_file(
    local_store: LocalBlobStore,
) -> None:
    items = [("blobs/" + "a" * 32, b"one"), ("../escape", b"two")]
    ok, bad = local_store.put_many(items)
    assert ok is None
    assert isinstance(bad, StorageError) and "invalid storage key" in str(bad)
    assert list((local_store.root / "tmp").iterdir()) == []
    assert local_store.head("blobs/" + "a" * 32) is not None
    assert not (local_store.root.parent / "escape").exists()
