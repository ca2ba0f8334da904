"""Version retention per plan: what is kept, what goes, what it gives back, dry runs."""

from __future__ import annotations

from sqlalchemy import select

from docstore.audit.models import AuditLog
from docstore.retention import fsck, gc
from docstore.retention import service as retention
from tests.fixtures.app import Api
from tests.retention.helpers import (
    blob_of,
    later,
    make_admin,
    objects,
    put_plan,
    save,
    services,
    set_plan,
)

COUNTS = ("versions_deleted", "blobs_deleted", "bytes_released")


def test_retention_keeps_pinned_and_newest_and_shared_blobs(api: Api) -> None:
    admin = make_admin(api, api.register("root"))
    put_plan(admin, "tight", retention_days=0, max_versions=2)
    ann, bob = api.register("ann"), api.register("bob")
    set_plan(admin, ann, "tight")
    contents = [f"version {n}\n".encode() * n for n in range(1, 7)]  # six different sizes
    doc = ann.upload("report.txt", contents[0]).json()
    versions = [doc["current_version"]] + [save(ann, doc["id"], c) for c in contents[1:]]
    assert [v["version_number"] for v in versions] == [1, 2, 3, 4, 5, 6]
    # Bob stores the bytes of Ann's v3: the server hashed them, so both share one blob.
    shared = bob.upload("copy.txt", contents[2]).json()
    shared_blob = blob_of(api, shared["current_version"]["id"])
    assert shared_blob.id == blob_of(api, versions[2]["id"]).id
    r = ann.patch(
        f"/api/v1/documents/{doc['id']}/versions/{versions[1]['id']}", json={"keep_forever": True}
    )
    assert r.status_code == 200
    gone = [versions[i] for i in (0, 2, 3)]  # v1, v3, v4
    gone_keys = {blob_of(api, versions[i]["id"]).storage_key for i in (0, 3)}
    expected = {
        "versions_deleted": 3,
        "blobs_deleted": 2,  # v3's blob is still Bob's
        "bytes_released": sum(v["size_bytes"] for v in gone),
    }
    used = ann.me()["used_bytes"]
    stored = objects(api)

    r = admin.post("/api/v1/admin/retention/run", params={"dry_run": "true"})
    assert r.status_code == 200, r.text
    assert {k: r.json()[k] for k in COUNTS} == expected and r.json()["dry_run"] is True
    listed = ann.get(f"/api/v1/documents/{doc['id']}/versions").json()["items"]
    assert len(listed) == 6 and ann.me()["used_bytes"] == used

    r = admin.post("/api/v1/admin/retention/run")
    assert r.status_code == 200, r.text
    assert {k: r.json()[k] for k in COUNTS} == expected and r.json()["dry_run"] is False
    listed = ann.get(f"/api/v1/documents/{doc['id']}/versions").json()["items"]
    assert [v["version_number"] for v in listed] == [6, 5, 2]
    assert ann.me()["used_bytes"] == used - expected["bytes_released"]
    assert ann.download(doc["id"], version_id=versions[1]["id"]).content == contents[1]
    assert ann.download(doc["id"], version_id=versions[2]["id"]).status_code == 404
    assert bob.download(shared["id"]).content == contents[2]

    svc = services(api)
    with svc.database.transaction() as db:
        audit = db.scalars(
            select(AuditLog).where(
                AuditLog.action == "VERSION_DELETE", AuditLog.document_id == doc["id"]
            )
        ).all()
    assert [a.details["version_numbers"] for a in audit if a.details] == [[1, 3, 4]]

    # Within the grace period GC keeps the objects; after it, exactly the two freed go.
    gc.collect(svc.database, svc.store, svc.settings)
    assert objects(api) == stored
    result = gc.collect(svc.database, svc.store, svc.settings, now=later(hours=2))
    assert result.objects_deleted == 2
    assert stored - objects(api) == gone_keys
    assert bob.download(shared["id"]).content == contents[2]
    assert fsck.run(svc, rehash=True).ok

    r = admin.post("/api/v1/admin/retention/run")
    assert {k: r.json()[k] for k in COUNTS} == dict.fromkeys(COUNTS, 0)
    assert ann.post("/api/v1/admin/retention/run").status_code == 403


def test_retention_window_with_a_controllable_clock_in_small_batches(api: Api) -> None:
    admin = make_admin(api, api.register("root"))
    put_plan(admin, "month", retention_days=30, max_versions=1)
    ann = api.register("ann")
    set_plan(admin, ann, "month")
    docs = []
    for i in range(5):
        doc = ann.upload(f"d{i}.txt", f"{i} one".encode()).json()
        save(ann, doc["id"], f"{i} two".encode())
        save(ann, doc["id"], f"{i} three".encode())
        docs.append(doc)
    db = services(api).database
    used = ann.me()["used_bytes"]

    # Ten days on, every version is inside the window.
    assert retention.run(db, now=later(days=10), batch_documents=2).versions_deleted == 0
    # A month on, only the current version (the newest one) of each document is kept.
    dry = retention.run(db, now=later(days=31), batch_documents=2, dry_run=True)
    result = retention.run(db, now=later(days=31), batch_documents=2)
    assert (result.versions_deleted, result.documents) == (10, 5)
    assert (dry.versions_deleted, dry.bytes_released, dry.blobs_deleted) == (
        result.versions_deleted,
        result.bytes_released,
        result.blobs_deleted,
    )
    assert ann.me()["used_bytes"] == used - result.bytes_released
    for i, doc in enumerate(docs):
        listed = ann.get(f"/api/v1/documents/{doc['id']}/versions").json()["items"]
        assert [v["version_number"] for v in listed] == [3]
        assert ann.download(doc["id"]).content == f"{i} three".encode()
