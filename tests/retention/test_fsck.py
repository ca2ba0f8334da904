"""`docstore fsck` (the real executable) finds each injected fault, repairs what it should,
and a second run is clean."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import delete, update

from docstore.config import Settings
from docstore.db import utcnow
from docstore.documents.models import Blob
from docstore.storage.inline import InlineObject
from docstore.users.models import User as UserRow
from tests.fixtures.app import Api
from tests.retention.helpers import blob_of, services

DOCSTORE = Path(sys.executable).with_name("docstore")


def _fsck(settings: Settings, *args: str) -> tuple[int, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCSTORE_")}
    env.update(
        {
            "DOCSTORE_DATA_DIR": str(settings.data_dir),
            "DOCSTORE_DATABASE_URL": settings.resolved_database_url,
            "DOCSTORE_STORAGE_URL": settings.resolved_storage_url,
            "DOCSTORE_SECRET_KEY": str(settings.secret_key),
        }
    )
    proc = subprocess.run(
        [str(DOCSTORE), "fsck", *args], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode in (0, 1), proc.stderr
    return proc.returncode, proc.stdout


def _errors(out: str) -> dict[tuple[str, str], dict[str, Any]]:
    report = json.loads(out)
    return {(f["check"], f["subject"]): f for f in report["findings"] if f["severity"] == "error"}


def test_fsck_finds_injected_faults_and_repairs_them(api: Api, settings: Settings) -> None:
    ann, bob = api.register("ann"), api.register("bob")
    lost = ann.upload("lost.txt", b"this object will vanish").json()
    # Over the inline limit: a file that rots; `lost` is a row of the database that goes.
    rotten = ann.upload("rotten.txt", b"these bytes will rot" * 4000).json()
    miscounted = ann.upload("count.txt", b"a blob with a wrong ref_count").json()
    bob.upload("fine.txt", b"bob's file")
    gone = ann.upload("gone.txt", b"purged long ago").json()
    svc = services(api)
    store = svc.store
    lost_blob = blob_of(api, lost["current_version"]["id"])
    rotten_blob = blob_of(api, rotten["current_version"]["id"])
    counted_blob = blob_of(api, miscounted["current_version"]["id"])
    # Purged, and the GC that should have deleted its object after the grace never ran.
    leftover = blob_of(api, gone["current_version"]["id"])
    assert ann.delete(f"/api/v1/documents/{gone['id']}").status_code == 204
    assert ann.delete(f"/api/v1/trash/{gone['id']}").status_code == 204

    assert lost_blob.storage_key.startswith("inline/")
    with svc.database.transaction() as db:
        db.execute(delete(InlineObject).where(InlineObject.storage_key == lost_blob.storage_key))
    rot = store.object_path(rotten_blob.storage_key)
    rot.write_bytes(b"THESE BYTES WILL ROT" * 4000)  # same size
    orphan = "blobs/orphan-left-by-a-crash"
    store.put_stream(orphan, [b"nobody knows me"])
    old = time.time() - 3 * 24 * 3600
    os.utime(store.object_path(orphan), (old, old))
    with svc.database.transaction() as db:
        db.execute(update(UserRow).where(UserRow.id == bob.id).values(used_bytes=123))
        db.execute(update(Blob).where(Blob.id == counted_blob.id).values(ref_count=5))
        db.execute(
            update(Blob)
            .where(Blob.id == leftover.id)
            .values(unreferenced_at=utcnow() - timedelta(hours=2))
        )

    expected = {
        ("missing_object", f"blob {lost_blob.id}"),
        ("ref_count", f"blob {counted_blob.id}"),
        ("orphan_object", f"object {orphan}"),
        ("unreferenced_blob", f"blob {leftover.id}"),
        ("quota", f"user {bob.id} ({bob.email})"),
    }
    code, out = _fsck(settings, "--json")
    assert code == 1
    assert set(_errors(out)) == expected  # without --rehash the rot goes unseen
    assert not any(f["repaired"] for f in _errors(out).values())

    code, out = _fsck(settings, "--json", "--rehash", "--repair")
    assert code == 1
    findings = _errors(out)
    assert set(findings) == expected | {("checksum_mismatch", f"blob {rotten_blob.id}")}
    assert all(f["repaired"] for f in findings.values())

    code, out = _fsck(settings, "--rehash")
    assert code == 0, out
    assert "clean" in out
    assert bob.me()["used_bytes"] == len(b"bob's file")
    assert {o.key for o in store.iter_objects()}.isdisjoint({orphan, leftover.storage_key})
    for doc, damaged in ((lost, True), (rotten, True), (miscounted, False)):
        versions = ann.get(f"/api/v1/documents/{doc['id']}/versions").json()["items"]
        assert versions[0]["is_damaged"] is damaged
    # Damaged bytes are never handed out again through deduplication.
    again = ann.upload("again.txt", b"these bytes will rot" * 4000).json()
    assert blob_of(api, again["current_version"]["id"]).id != rotten_blob.id
