"""Blob GC: grace period, retried storage deletes, crashed uploads, orphans, and the race
between GC and an upload that deduplicates onto the blob GC is about to delete."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text

from docstore.app import create_app
from docstore.db import Database, utcnow
from docstore.documents import blobs
from docstore.documents.models import Blob, DocumentVersion
from docstore.errors import Conflict
from docstore.retention import gc
from docstore.services import Services
from docstore.storage.base import BlobStore
from docstore.versions.service import use_content
from tests.fixtures.app import BASE, Api, User, make_settings
from tests.retention.helpers import blob_of, later, objects, services


class FlakyStore:
    """A blob store whose deletes fail while `failing` is set (storage unreachable)."""

    def __init__(self, store: BlobStore) -> None:
        self.store = store
        self.failing = True

    def delete(self, key: str) -> None:
        if self.failing:
            raise OSError("storage is unreachable")
        self.store.delete(key)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


def _unreferenced_blob(api: Api, user: User, name: str, data: bytes) -> Blob:
    """Upload `data`, then purge it: its blob is left active with no reference."""
    doc = user.upload(name, data).json()
    blob = blob_of(api, doc["current_version"]["id"])
    assert user.delete(f"/api/v1/documents/{doc['id']}").status_code == 204
    assert user.delete(f"/api/v1/trash/{doc['id']}").status_code == 204
    return blob


def _assert_every_version_has_its_object(svc: Services) -> None:
    with svc.database.transaction() as db:
        rows = db.execute(
            select(DocumentVersion.id, Blob.storage_key, Blob.state, Blob.size_bytes).join(
                Blob, Blob.id == DocumentVersion.blob_id
            )
        ).all()
    for version_id, key, state, size in rows:
        assert state == "active", (version_id, state)
        info = svc.store.head(key)
        assert info is not None and info.size == size, version_id


def test_gc_waits_for_grace_and_retries_failed_deletes(api: Api) -> None:
    ann = api.register("ann")
    svc = services(api)
    blob = _unreferenced_blob(api, ann, "a.txt", b"to be unreferenced")

    assert gc.collect(svc.database, svc.store, svc.settings).claimed_unreferenced == 0
    flaky = FlakyStore(svc.store)
    result = gc.collect(svc.database, flaky, svc.settings, now=later(hours=2))
    assert (result.claimed_unreferenced, result.delete_failures) == (1, 1)
    with svc.database.transaction() as db:
        row = db.get_one(Blob, blob.id)
        assert (row.state, row.delete_attempts) == ("deleting", 1)
    assert blob.storage_key in objects(api)
    # Deleting is terminal: the content no longer deduplicates, a new upload stores its own.
    again = ann.upload("b.txt", b"to be unreferenced").json()
    assert blob_of(api, again["current_version"]["id"]).id != blob.id

    flaky.failing = False
    result = gc.collect(svc.database, flaky, svc.settings, now=later(hours=2))
    assert (result.objects_deleted, result.delete_failures) == (1, 0)
    assert blob.storage_key not in objects(api)
    with svc.database.transaction() as db:
        assert db.get(Blob, blob.id) is None
    assert ann.download(again["id"]).content == b"to be unreferenced"
    _assert_every_version_has_its_object(svc)


def test_crashed_uploads_and_orphan_objects_are_cleaned_after_their_grace(api: Api) -> None:
    svc = services(api)
    # A crash between writing the bytes and committing the version leaves a pending row.
    key = blobs.new_key()
    pending_id = blobs.register_pending(svc.database, key, 5)
    svc.store.put_stream(key, [b"crash"])
    # A crash before the row was written leaves an object no row knows of.
    orphan = blobs.new_key()
    svc.store.put_stream(orphan, [b"orphan"])
    foreign = "exports/not-a-blob"
    svc.store.put_stream(foreign, [b"someone else's"])

    assert (
        gc.collect(svc.database, svc.store, svc.settings, now=later(hours=2)).objects_deleted == 0
    )
    assert (
        gc.sweep(svc.database, svc.store, svc.settings, now=later(hours=2))["orphans_deleted"] == 0
    )
    result = gc.collect(svc.database, svc.store, svc.settings, now=later(days=3))
    assert (result.claimed_pending, result.objects_deleted) == (1, 1)
    with svc.database.transaction() as db:
        assert db.get(Blob, pending_id) is None
    assert (
        gc.sweep(svc.database, svc.store, svc.settings, now=later(days=3))["orphans_deleted"] == 1
    )
    assert objects(api) == {foreign}


@pytest.fixture
def pg_api(tmp_path: Path, pg_url: str) -> Iterator[Api]:
    """The app on PostgreSQL only (row locks are what the race tests are about)."""
    app = create_app(make_settings(tmp_path, pg_url))
    with TestClient(app, base_url=BASE, follow_redirects=False) as client:
        yield Api(client)


def _lock_waits_on(database: Database, holder_pid: int, seconds: float = 30) -> bool:
    """Whether some session of this database waits for a lock `holder_pid` holds, polling
    pg_stat_activity (a fresh snapshot per transaction) every 20 ms for up to `seconds`."""
    query = text(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
        " AND wait_event_type = 'Lock' AND :holder = ANY(pg_blocking_pids(pid))"
    )
    deadline = time.monotonic() + seconds
    with database.engine.connect() as conn:
        while time.monotonic() < deadline:
            waiting = conn.execute(query, {"holder": holder_pid}).scalar_one()
            conn.rollback()
            if waiting:
                return True
            time.sleep(0.02)
    return False


def test_gc_skips_a_blob_a_dedup_has_locked(pg_api: Api) -> None:
    """Deterministic interleavings: dedup holds the row lock, or GC's claim commits first."""
    ann = pg_api.register("ann")
    svc = services(pg_api)
    data = b"contended content"
    sha = hashlib.sha256(data).hexdigest()
    blob = _unreferenced_blob(pg_api, ann, "a.txt", data)

    with svc.database.transaction() as db:
        target = blobs.find_dedup_target(db, sha, len(data))
        assert target is not None and target.id == blob.id
        # GC runs while the dedup's transaction holds the row: it must leave it alone.
        done: list[gc.GcResult] = []
        worker = threading.Thread(
            target=lambda: done.append(
                gc.collect(svc.database, svc.store, svc.settings, now=later(hours=2))
            )
        )
        worker.start()
        worker.join(30)
        assert done and done[0].claimed_unreferenced == 0
        blobs.add_ref(db, target.id)
    with svc.database.transaction() as db:
        assert db.get_one(Blob, blob.id).state == "active"
    assert svc.store.head(blob.storage_key) is not None

    # GC's claim holds the row; the dedup waits, then finds no active blob to share.
    blob2 = _unreferenced_blob(pg_api, ann, "b.txt", b"second content")
    sha2 = hashlib.sha256(b"second content").hexdigest()
    found: list[Blob | None] = []
    with svc.database.transaction() as db:
        assert gc.claim_unreferenced(db, later(hours=1), later(hours=2), 10) == 1

        def dedup() -> None:
            with svc.database.transaction() as other:
                found.append(blobs.find_dedup_target(other, sha2, len(b"second content")))

        holder = db.scalar(text("SELECT pg_backend_pid()"))
        waiter = threading.Thread(target=dedup)
        waiter.start()
        waited = _lock_waits_on(svc.database, holder)  # the dedup is blocked on our claim
    waiter.join(30)
    assert waited, "the dedup never waited for the lock of GC's claim"
    assert found == [None]
    with svc.database.transaction() as db, pytest.raises(Conflict):
        use_content(db, db.get_one(Blob, blob2.id))


def _race_once(
    api: Api, uploader: User, name: str, data: bytes, gc_delay: float, gc_now: datetime
) -> tuple[int, float]:
    """Upload `data`, which dedups onto an unreferenced blob, while GC runs `gc_delay` s
    after the upload starts; the new document's blob id and how long the upload took."""
    svc = services(api)
    barrier = threading.Barrier(2, timeout=30)
    uploaded: list[Any] = []

    def upload() -> None:
        barrier.wait()
        started = time.monotonic()
        uploaded.append(uploader.upload(name, data))
        uploaded.append(time.monotonic() - started)

    def collect() -> None:
        barrier.wait()
        time.sleep(gc_delay)
        gc.collect(svc.database, svc.store, svc.settings, now=gc_now)

    threads = [threading.Thread(target=upload), threading.Thread(target=collect)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads)
    assert uploaded and uploaded[0].status_code == 201, uploaded
    doc = uploaded[0].json()
    assert uploader.download(doc["id"]).content == data
    return blob_of(api, doc["current_version"]["id"]).id, uploaded[1]


def _unreferenced_blobs(svc: Services, contents: list[bytes], since: datetime) -> list[int]:
    """Stored, verified blobs that no version references any more (as after a purge);
    the i-th lost its last reference i seconds after `since`."""
    rows = []
    for i, data in enumerate(contents):
        key = blobs.new_key()
        svc.store.put_stream(key, [data])
        rows.append(
            Blob(storage_key=key, sha256=hashlib.sha256(data).hexdigest(), size_bytes=len(data),
                 verified=True, state="active", ref_count=0,
                 unreferenced_at=since + timedelta(seconds=i))
        )  # fmt: skip
    with svc.database.transaction() as db:
        db.add_all(rows)
        db.flush()
        return [b.id for b in rows]


def test_gc_racing_dedup_uploads_never_loses_an_object(pg_api: Api) -> None:
    """50 rounds, GC starting from 0 to 1.5 uploads' time into the upload: each round ends in
    exactly one of the two outcomes, and both occur (else the race was never run)."""
    bob = pg_api.register("bob")
    svc = services(pg_api)
    contents = [f"race {i} ".encode() * 10 for i in range(50)]
    since = utcnow()
    old = _unreferenced_blobs(svc, contents, since)
    grace = timedelta(seconds=svc.settings.blob_gc_grace_seconds)
    upload_time = 0.0
    outcomes = {"dedup": 0, "gc": 0}
    for i, data in enumerate(contents):
        # In round i the i-th blob's grace period is over; GC starts at a different moment
        # of the upload each round, scaled by how long the last upload took (machine load).
        gc_now = since + grace + timedelta(seconds=i + 0.5)
        gc_delay = (i % 10) / 6 * upload_time
        new_blob, upload_time = _race_once(pg_api, bob, f"new{i}.txt", data, gc_delay, gc_now)
        _assert_every_version_has_its_object(svc)
        with svc.database.transaction() as db:
            row = db.get(Blob, old[i])
            outcome = (None if row is None else (row.state, row.ref_count), new_blob == old[i])
        if outcome == (("active", 1), True):
            outcomes["dedup"] += 1  # the dedup locked the blob first: the upload shares it
        elif outcome == (None, False):
            outcomes["gc"] += 1  # GC claimed and deleted it first: the upload kept its own copy
        else:
            pytest.fail(f"round {i}: neither outcome: (row, shared) = {outcome}")
    assert outcomes["dedup"] and outcomes["gc"], outcomes
    # Whatever GC claimed in a race it won is gone from storage once collected.
    gc.collect(svc.database, svc.store, svc.settings, now=later(hours=2))
    _assert_every_version_has_its_object(svc)
    with svc.database.transaction() as db:
        assert db.scalar(select(Blob.id).where(Blob.state != "active")) is None
