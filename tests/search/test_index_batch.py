"""The index job's batched writer (search.indexing._store_batch): one transaction a batch,
the document rows locked first in id order; a row another transaction holds (a purge, a
new version) is skipped, not waited for, and indexed by a later pass."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from docstore.documents.models import Document
from tests.fixtures.app import Api
from tests.search.helpers import API, index, names, services, upload


def test_a_document_held_by_another_writer_is_skipped_then_indexed(api: Api) -> None:
    svc = services(api)
    if not svc.database.is_postgres:
        pytest.skip("SQLite has one writer at a time: no row is held while the job writes")
    alice = api.register()
    held = upload(alice, "held.txt", b"walrus in a locked row")["id"]
    free = upload(alice, "free.txt", b"walrus in a free row")["id"]
    # Another writer holds the row until the job's pass is over.
    with svc.database.engine.connect() as other, other.begin():
        other.execute(select(Document.id).where(Document.id == held).with_for_update())
        progress = index(api)
        assert progress.indexed == 1 and progress.stale >= 1
        assert names(alice, "walrus") == ["free.txt"]
    assert alice.get(f"{API}/documents/{held}").json()["index_status"] == "pending"
    assert alice.get(f"{API}/documents/{free}").json()["index_status"] == "indexed"
    assert index(api).indexed == 1
    assert sorted(names(alice, "walrus")) == ["free.txt", "held.txt"]


def test_many_documents_are_indexed_in_batches(api: Api) -> None:
    alice = api.register()
    for i in range(70):  # more than one batch (64)
        upload(alice, f"n{i}.txt", f"heron number{i}".encode())
    progress = index(api)
    assert progress.indexed == 70 and progress.stale == 0
    assert names(alice, "number69") == ["n69.txt"]
    found = alice.get(f"{API}/search", params={"q": "heron", "limit": 100}).json()["items"]
    assert len(found) == 70
