"""The trash: listing, restore round trips, name clashes, purge and the automatic purge."""

from __future__ import annotations

from sqlalchemy import func, select

from docstore.audit.models import AuditLog
from docstore.documents.models import Blob, Document, DocumentVersion
from docstore.retention import fsck
from docstore.trash import service as trash
from tests.fixtures.app import Api, User
from tests.retention.helpers import blob_of, later, save, services


def _trash(user: User, **params: object) -> list[dict[str, object]]:
    r = user.get("/api/v1/trash", params=params)
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


def _children(user: User, folder_id: int) -> dict[str, dict[str, object]]:
    r = user.get(f"/api/v1/folders/{folder_id}/children")
    assert r.status_code == 200, r.text
    return {c["name"]: c for c in r.json()["items"]}


def test_folder_delete_restore_round_trip_at_depth_five(api: Api) -> None:
    ann = api.register("ann")
    chain = []
    parent = None
    for depth in range(1, 6):
        folder = ann.mkdir(f"level{depth}", parent)
        chain.append(folder)
        parent = folder["id"]
    docs = {
        f["id"]: ann.upload(f"doc{i}.txt", f"at depth {i + 1}".encode(), folder=f["id"]).json()
        for i, f in enumerate(chain)
    }
    # Deleted on its own before its folder: it keeps its own trash entry.
    loner = ann.upload("loner.txt", b"alone", folder=chain[2]["id"]).json()
    assert ann.delete(f"/api/v1/documents/{loner['id']}").status_code == 204
    used = ann.me()["used_bytes"]

    assert ann.delete(f"/api/v1/folders/{chain[0]['id']}").status_code == 204
    items = _trash(ann)
    assert [(i["kind"], i["id"]) for i in items] == [
        ("folder", chain[0]["id"]),
        ("document", loner["id"]),
    ]
    assert items[0]["original_parent_id"] == ann.root and items[0]["name"] == "level1"
    assert items[1]["original_parent_id"] == chain[2]["id"]
    assert "level1" not in _children(ann, ann.root)
    assert ann.get(f"/api/v1/folders/{chain[4]['id']}").status_code == 404
    assert ann.get(f"/api/v1/documents/{docs[chain[4]['id']]['id']}").status_code == 404
    assert ann.me()["used_bytes"] == used  # trashed, not purged: still counted

    r = ann.post(f"/api/v1/folders/{chain[0]['id']}/restore")
    assert r.status_code == 200, r.text
    for i, folder in enumerate(chain):
        got = ann.get(f"/api/v1/folders/{folder['id']}").json()
        assert got["path"] == folder["path"] and got["name"] == folder["name"]
        doc = docs[folder["id"]]
        assert ann.download(doc["id"]).content == f"at depth {i + 1}".encode()
    assert [i["id"] for i in _trash(ann)] == [loner["id"]]
    assert "loner.txt" not in _children(ann, chain[2]["id"])
    r = ann.post(f"/api/v1/documents/{loner['id']}/restore")
    assert r.status_code == 200 and r.json()["parent_folder_id"] == chain[2]["id"]
    assert _trash(ann) == []


def test_restore_with_a_name_clash_and_into_the_root(api: Api) -> None:
    ann = api.register("ann")
    first = ann.upload("notes.txt", b"first").json()
    assert ann.delete(f"/api/v1/documents/{first['id']}").status_code == 204
    second = ann.upload("notes.txt", b"second").json()
    r = ann.post(f"/api/v1/documents/{first['id']}/restore")
    assert r.status_code == 200 and r.json()["name"] == "notes (2).txt"
    assert ann.download(second["id"]).content == b"second"

    box = ann.mkdir("box")
    assert ann.delete(f"/api/v1/folders/{box['id']}").status_code == 204
    ann.mkdir("box")
    r = ann.post(f"/api/v1/folders/{box['id']}/restore")
    assert r.status_code == 200 and r.json()["name"] == "box (2)"

    # Items deleted on their own before their folder keep their trash entries when the
    # folder is purged, and come back to the root.
    projects = ann.mkdir("projects")
    plan = ann.upload("plan.txt", b"plan", folder=projects["id"]).json()
    drafts = ann.mkdir("drafts", projects["id"])
    draft = ann.upload("draft.txt", b"draft", folder=drafts["id"]).json()
    assert ann.delete(f"/api/v1/documents/{plan['id']}").status_code == 204
    assert ann.delete(f"/api/v1/folders/{drafts['id']}").status_code == 204
    assert ann.delete(f"/api/v1/folders/{projects['id']}").status_code == 204
    assert ann.delete(f"/api/v1/trash/folders/{projects['id']}").status_code == 204
    items = {i["id"]: i for i in _trash(ann)}
    assert projects["id"] not in items
    assert items[plan["id"]]["original_parent_id"] == ann.root
    assert items[drafts["id"]]["original_parent_id"] == ann.root
    r = ann.post(f"/api/v1/documents/{plan['id']}/restore")
    assert r.status_code == 200 and r.json()["parent_folder_id"] == ann.root
    assert ann.download(plan["id"]).content == b"plan"
    r = ann.post(f"/api/v1/folders/{drafts['id']}/restore")
    assert r.status_code == 200, r.text
    assert r.json()["parent_id"] == ann.root
    assert r.json()["path"] == f"/{ann.root}/{drafts['id']}/"
    assert ann.download(draft["id"]).content == b"draft"
    assert "draft.txt" in _children(ann, drafts["id"])


def test_purge_releases_quota_and_keeps_shared_blobs(api: Api) -> None:
    ann, bob = api.register("ann"), api.register("bob")
    base = ann.me()["used_bytes"]
    solo = ann.upload("solo.txt", b"only mine").json()
    save(ann, solo["id"], b"only mine, edited")
    twin = ann.upload("twin.txt", b"we both have this").json()
    theirs = bob.upload("twin.txt", b"we both have this").json()
    folder = ann.mkdir("folder")
    sub = ann.mkdir("sub", folder["id"])
    inner = ann.upload("inner.txt", b"inner bytes", folder=sub["id"]).json()
    assert ann.me()["used_bytes"] == base + 9 + 17 + 17 + 11

    # Not in the trash yet; not Bob's to purge.
    assert ann.delete(f"/api/v1/trash/{solo['id']}").status_code == 404
    assert ann.delete(f"/api/v1/documents/{solo['id']}").status_code == 204
    assert bob.delete(f"/api/v1/trash/{solo['id']}").status_code == 404
    assert bob.delete(f"/api/v1/trash/folders/{folder['id']}").status_code == 404
    assert _trash(bob) == []

    assert ann.delete(f"/api/v1/trash/{solo['id']}").status_code == 204
    assert ann.me()["used_bytes"] == base + 17 + 11
    assert ann.post(f"/api/v1/documents/{solo['id']}/restore").status_code == 404
    assert ann.delete(f"/api/v1/trash/{solo['id']}").status_code == 404

    assert ann.delete(f"/api/v1/folders/{folder['id']}").status_code == 204
    assert ann.delete(f"/api/v1/trash/folders/{folder['id']}").status_code == 204
    assert ann.me()["used_bytes"] == base + 17
    assert ann.get(f"/api/v1/documents/{inner['id']}").status_code == 404
    assert ann.post(f"/api/v1/folders/{sub['id']}/restore").status_code == 404

    shared_blob = blob_of(api, twin["current_version"]["id"])
    assert ann.delete(f"/api/v1/documents/{twin['id']}").status_code == 204
    assert ann.delete("/api/v1/trash").status_code == 204
    assert ann.me()["used_bytes"] == base
    assert _trash(ann) == []
    assert bob.download(theirs["id"]).content == b"we both have this"
    svc = services(api)
    with svc.database.transaction() as db:
        blob = db.get_one(Blob, shared_blob.id)
        assert (blob.state, blob.ref_count) == ("active", 1)
        purged = db.scalar(
            select(func.count()).where(AuditLog.action == "PURGE", AuditLog.owner_id == ann.id)
        )
        assert purged == 3 + 1  # three documents and one folder
    assert fsck.run(svc).ok


def test_trash_is_purged_after_the_retention_with_a_controllable_clock(api: Api) -> None:
    ann = api.register("ann")
    base = ann.me()["used_bytes"]
    old = ann.upload("old.txt", b"old bytes").json()
    box = ann.mkdir("box")
    ann.upload("in-box.txt", b"boxed", folder=box["id"])
    keep = ann.upload("keep.txt", b"live").json()
    assert ann.delete(f"/api/v1/documents/{old['id']}").status_code == 204
    assert ann.delete(f"/api/v1/folders/{box['id']}").status_code == 204
    svc = services(api)
    days = svc.settings.trash_retention_days
    assert days == 30

    result = trash.purge_expired(svc.database, days, now=later(days=29))
    assert result["documents"] == 0 and len(_trash(ann)) == 2
    result = trash.purge_expired(svc.database, days, now=later(days=31))
    assert (result["documents"], result["folders"]) == (2, 1)
    assert result["bytes_released"] == 9 + 5
    assert _trash(ann) == []
    assert ann.me()["used_bytes"] == base + 4
    assert ann.download(keep["id"]).content == b"live"
    with svc.database.transaction() as db:
        assert db.scalar(select(func.count()).select_from(Document)) == 1
        assert db.scalar(select(func.count()).select_from(DocumentVersion)) == 1


def test_trash_pages_newest_first(api: Api) -> None:
    ann = api.register("ann")
    ids = []
    for i in range(5):
        doc = ann.upload(f"f{i}.txt", b"x").json()
        assert ann.delete(f"/api/v1/documents/{doc['id']}").status_code == 204
        ids.append(doc["id"])
    seen = [i["id"] for page in ann.pages("/api/v1/trash", limit=2) for i in page["items"]]
    assert seen == ids[::-1]
    assert ann.get("/api/v1/trash", params={"cursor": "garbage"}).status_code == 400
