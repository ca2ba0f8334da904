"""Folder rules: names, clashes, cycles, deep subtree moves, trash, visibility."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select, update

from docstore.documents.models import Document
from docstore.folders.models import Folder
from docstore.folders.schemas import ChildOut
from tests.audit.helpers import services
from tests.fixtures.app import Api, User
from tests.sharing.helpers import link

BAD_NAMES = [
    "",
    ".",
    "..",
    "a/b",
    "nul\x00here",
    "tab\there",
    "new\nline",
    "\x7f",
    " lead",
    "trail ",
    "x" * 256,
    "é" * 128,
]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_names_are_rejected(api: Api, name: str) -> None:
    ann = api.register()
    r = ann.post("/api/v1/folders", json={"name": name, "parent_id": None})
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "validation_error"
    r = ann.upload(name or "x/", b"data") if name else ann.upload("a/b", b"data")
    assert r.status_code == 422


def test_names_are_nfc_normalised_and_255_bytes_is_fine(api: Api) -> None:
    ann = api.register()
    decomposed = "e\u0301te\u0301"
    f = ann.mkdir(decomposed)
    assert f["name"] == "\u00e9t\u00e9"
    r = ann.post("/api/v1/folders", json={"name": "\u00e9t\u00e9", "parent_id": None})
    assert r.status_code == 409 and r.json()["code"] == "name_conflict"
    assert ann.mkdir("x" * 255)["name"] == "x" * 255
    assert ann.mkdir("é" * 127)["name"] == "é" * 127


def test_names_unique_among_folders_and_documents(api: Api) -> None:
    ann = api.register()
    ann.mkdir("report")
    r = ann.upload("report", b"hello")
    assert r.status_code == 409 and r.json()["code"] == "name_conflict"
    assert ann.upload("notes.txt", b"hello").status_code == 201
    r = ann.post("/api/v1/folders", json={"name": "notes.txt", "parent_id": None})
    assert r.status_code == 409
    # The same name in another folder is fine; case differs -> a different name.
    sub = ann.mkdir("sub")
    assert ann.upload("notes.txt", b"hello", folder=sub["id"]).status_code == 201
    assert ann.upload("Notes.txt", b"hello").status_code == 201


def test_paths_are_ids_and_rename_touches_one_row(api: Api) -> None:
    ann = api.register()
    a = ann.mkdir("a")
    b = ann.mkdir("b", a["id"])
    assert a["path"] == f"/{ann.root}/{a['id']}/"
    assert b["path"] == f"/{ann.root}/{a['id']}/{b['id']}/"
    r = ann.patch(f"/api/v1/folders/{a['id']}", json={"name": "renamed"})
    assert r.status_code == 200 and r.json()["name"] == "renamed"
    assert ann.get(f"/api/v1/folders/{b['id']}").json()["path"] == b["path"]


def test_cycle_is_409(api: Api) -> None:
    ann = api.register()
    a = ann.mkdir("a")
    b = ann.mkdir("b", a["id"])
    c = ann.mkdir("c", b["id"])
    for target in (a["id"], c["id"]):
        r = ann.patch(f"/api/v1/folders/{a['id']}", json={"parent_id": target})
        assert r.status_code == 409, target
        assert r.json()["code"] == "cycle"


def test_subtree_move_keeps_paths_right_at_depth_20(api: Api) -> None:
    ann = api.register()
    chain = [ann.mkdir("d0")]
    for i in range(1, 20):
        chain.append(ann.mkdir(f"d{i}", chain[-1]["id"]))
    doc = ann.upload("deep.txt", b"deep", folder=chain[-1]["id"]).json()
    other = ann.mkdir("other")
    r = ann.patch(f"/api/v1/folders/{chain[5]['id']}", json={"parent_id": other["id"]})
    assert r.status_code == 200, r.text
    # Every folder's path must equal the chain of its ancestors' ids, read back fresh.
    db = ann.api.client.app.state.services.database  # type: ignore[attr-defined]
    with db.transaction() as s:
        folders = {f.id: f for f in s.scalars(select(Folder).where(Folder.owner_id == ann.id))}
    for f in folders.values():
        ids, cur = [], f
        while cur is not None:
            ids.append(cur.id)
            cur = folders.get(cur.parent_id) if cur.parent_id else None
        assert f.path == "/" + "/".join(map(str, reversed(ids))) + "/", f.name
    moved_leaf = folders[chain[-1]["id"]]
    assert moved_leaf.path.startswith(f"/{ann.root}/{other['id']}/{chain[5]['id']}/")
    assert moved_leaf.path.count("/") == 2 + 1 + 15  # root, other, d5..d19
    # Depth 20 in the old place is gone; the document is still reachable below the move.
    assert ann.get(f"/api/v1/documents/{doc['id']}").status_code == 200
    assert ann.download(doc["id"]).content == b"deep"


def test_move_into_clash_is_409_and_root_cannot_move(api: Api) -> None:
    ann = api.register()
    a = ann.mkdir("a")
    ann.mkdir("x", a["id"])
    x2 = ann.mkdir("x")
    r = ann.patch(f"/api/v1/folders/{x2['id']}", json={"parent_id": a["id"]})
    assert r.status_code == 409 and r.json()["code"] == "name_conflict"
    r = ann.patch(f"/api/v1/folders/{ann.root}", json={"name": "root"})
    assert r.status_code == 403
    assert ann.delete(f"/api/v1/folders/{ann.root}").status_code == 403


def test_children_listing_order_and_paging(api: Api) -> None:
    ann = api.register()
    for name in ("b", "a", "c"):
        ann.mkdir(name)
    for name in ("z.txt", "m.txt", "a.txt", "b.txt"):
        assert ann.upload(name, name.encode()).status_code == 201
    seen = [
        (i["kind"], i["name"])
        for page in ann.pages("/api/v1/folders/root/children", limit=2)
        for i in page["items"]
    ]
    assert seen == [
        ("folder", "a"),
        ("folder", "b"),
        ("folder", "c"),
        ("document", "a.txt"),
        ("document", "b.txt"),
        ("document", "m.txt"),
        ("document", "z.txt"),
    ]
    page = ann.get("/api/v1/folders/root/children", params={"order_by": "updated_at"}).json()
    docs = [i["name"] for i in page["items"] if i["kind"] == "document"]
    assert docs == ["b.txt", "a.txt", "m.txt", "z.txt"]
    # Paged newest first, one entry a page: the cursor carries a timestamp; same order.
    whole = [(i["kind"], i["name"]) for i in page["items"]]
    paged = [
        (i["kind"], i["name"])
        for one in ann.pages("/api/v1/folders/root/children", order_by="updated_at", limit=1)
        for i in one["items"]
    ]
    assert paged == whole
    sizes = {i["name"]: i["size_bytes"] for i in page["items"] if i["kind"] == "document"}
    assert sizes["m.txt"] == 5
    r = ann.get("/api/v1/folders/root/children", params={"cursor": "garbage!"})
    assert r.status_code == 400 and r.json()["code"] == "bad_request"
    # An empty cursor is no cursor the server made: refused, not read as the first page.
    for path in ("/api/v1/folders/root/children", "/api/v1/shared-with-me", "/api/v1/trash"):
        r = ann.get(path, params={"cursor": ""})
        assert r.status_code == 400 and r.json()["code"] == "bad_request", path
    r = ann.get("/api/v1/folders/root/children", params={"limit": 1001})
    assert r.status_code == 422


def test_listing_entries_are_child_out_and_pages_split_between_folders_and_documents(
    api: Api,
) -> None:
    """Entries are built from rows without a model (folders/endpoints.py): each must still
    be exactly a ChildOut. A page that ends on the last folder moves on to the documents."""
    ann = api.register()
    top = ann.mkdir("top")["id"]
    for name in ("f1", "f2"):
        ann.mkdir(name, parent=top)
    for name in ("d1.txt", "d2.txt"):
        assert ann.upload(name, b"12345", folder=top).status_code == 201
    pages = []
    for page in ann.pages(f"/api/v1/folders/{top}/children", limit=2):
        pages.append([(i["kind"], i["name"]) for i in page["items"]])
        for item in page["items"]:
            assert set(item) == set(ChildOut.model_fields)
            assert ChildOut.model_validate(item).model_dump(mode="json") == item
    assert pages == [
        [("folder", "f1"), ("folder", "f2")],
        [("document", "d1.txt"), ("document", "d2.txt")],
    ]


def test_delete_folder_to_trash_and_restore_with_subtree(api: Api) -> None:
    ann = api.register()
    top = ann.mkdir("top")
    mid = ann.mkdir("mid", top["id"])
    doc = ann.upload("in.txt", b"x", folder=mid["id"]).json()
    early = ann.upload("early.txt", b"y", folder=mid["id"]).json()
    assert ann.delete(f"/api/v1/documents/{early['id']}").status_code == 204
    assert ann.delete(f"/api/v1/folders/{top['id']}").status_code == 204
    for url in (
        f"/api/v1/folders/{top['id']}",
        f"/api/v1/folders/{mid['id']}",
        f"/api/v1/documents/{doc['id']}",
    ):
        assert ann.get(url).status_code == 404, url
    # The name is free again while the folder is in the trash.
    again = ann.mkdir("top")
    r = ann.post(f"/api/v1/folders/{top['id']}/restore")
    assert r.status_code == 200, r.text
    assert r.json()["name"] == "top (2)"
    assert ann.get(f"/api/v1/documents/{doc['id']}").status_code == 200
    # The document trashed before the folder stays in the trash.
    assert ann.get(f"/api/v1/documents/{early['id']}").status_code == 404
    assert ann.post(f"/api/v1/documents/{early['id']}/restore").status_code == 200
    assert again["id"] != top["id"]


def test_other_users_items_are_404(api: Api) -> None:
    ann, bob = api.register(), api.register()
    f = ann.mkdir("private")
    doc = ann.upload("secret.txt", b"secret", folder=f["id"]).json()
    urls = [
        ("GET", f"/api/v1/folders/{f['id']}"),
        ("GET", f"/api/v1/folders/{f['id']}/children"),
        ("PATCH", f"/api/v1/folders/{f['id']}"),
        ("DELETE", f"/api/v1/folders/{f['id']}"),
        ("POST", f"/api/v1/folders/{f['id']}/restore"),
        ("GET", f"/api/v1/documents/{doc['id']}"),
        ("PATCH", f"/api/v1/documents/{doc['id']}"),
        ("DELETE", f"/api/v1/documents/{doc['id']}"),
        ("POST", f"/api/v1/documents/{doc['id']}/restore"),
        ("GET", f"/api/v1/documents/{doc['id']}/download"),
        ("GET", "/api/v1/documents/999999"),
    ]
    for method, url in urls:
        kw = {"json": {"name": "stolen"}} if method == "PATCH" else {}
        r = bob.request(method, url, **kw)
        assert r.status_code == 404, (method, url, r.status_code)
        assert r.json()["code"] == "not_found"
    # Creating inside someone else's folder or uploading there is 404 too.
    r = bob.post("/api/v1/folders", json={"name": "x", "parent_id": f["id"]})
    assert r.status_code == 404
    assert bob.upload("x.txt", b"x", folder=f["id"]).status_code == 404
    # Moving one's own item into another's folder does not reveal it either.
    mine = bob.mkdir("mine")
    r = bob.patch(f"/api/v1/folders/{mine['id']}", json={"parent_id": f["id"]})
    assert r.status_code == 404
    assert ann.get(f"/api/v1/folders/{f['id']}").json()["name"] == "private"


def test_move_document_between_folders(api: Api) -> None:
    ann: User = api.register()
    a, b = ann.mkdir("a"), ann.mkdir("b")
    doc = ann.upload("d.txt", b"d", folder=a["id"]).json()
    r = ann.patch(
        f"/api/v1/documents/{doc['id']}", json={"parent_folder_id": b["id"], "name": "e.txt"}
    )
    assert r.status_code == 200
    assert (r.json()["parent_folder_id"], r.json()["name"]) == (b["id"], "e.txt")
    r = ann.patch(f"/api/v1/documents/{doc['id']}", json={"parent_folder_id": None})
    assert r.json()["parent_folder_id"] == ann.root


def test_listing_times_are_written_as_everywhere_else_and_page_by_updated_at(api: Api) -> None:
    """On SQLite the listing's timestamps are rendered by the database (db.api_time): they
    must be the strings every other endpoint writes, a zero fraction left out, and a
    cursor on `updated_at` must still page through them in order."""
    ann = api.register()
    top = ann.mkdir("times")["id"]
    times = {
        "whole.txt": datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC),
        "tenths.txt": datetime(2026, 3, 1, 12, 0, 1, 120000, tzinfo=UTC),
        "micro.txt": datetime(2026, 3, 1, 12, 0, 2, 123456, tzinfo=UTC),
    }
    ids = {}
    for name, when in times.items():
        r = ann.upload(name, b"x", folder=top)
        assert r.status_code == 201, r.text
        ids[name] = r.json()["id"]
        with services(api).database.transaction() as db:
            db.execute(
                update(Document)
                .where(Document.id == ids[name])
                .values(created_at=when, updated_at=when)
            )
    seen = []
    for page in ann.pages(f"/api/v1/folders/{top}/children", limit=1, order_by="updated_at"):
        for item in page["items"]:
            one = ann.get(f"/api/v1/documents/{item['id']}").json()
            assert (item["created_at"], item["updated_at"]) == (
                one["created_at"],
                one["updated_at"],
            )
            assert ChildOut.model_validate(item).model_dump(mode="json") == item
            seen.append((item["name"], item["updated_at"]))
    assert seen == [
        ("micro.txt", "2026-03-01T12:00:02.123456Z"),
        ("tenths.txt", "2026-03-01T12:00:01.120000Z"),
        ("whole.txt", "2026-03-01T12:00:00Z"),
    ]


def test_listing_entries_written_by_the_database_escape_names_as_json(api: Api) -> None:
    """Listing entries are JSON the database wrote (db.json_object): quotes, backslashes and
    characters outside ASCII must come back as the very names stored, through a listing and
    through a folder link alike."""
    ann = api.register()
    top = ann.mkdir("escapes")["id"]
    names = [
        'say "hi".txt',
        "back\\slash.txt",
        "naïve \u2013 文書 😀.txt",
        "<script>&amp;.txt",
        "it's.txt",
    ]
    for name in names:
        assert ann.upload(name, b"x", folder=top).status_code == 201
    ann.mkdir('folder "q" \\ ü', parent=top)
    r = ann.get(f"/api/v1/folders/{top}/children")
    assert r.status_code == 200
    items = r.json()["items"]
    assert [i["name"] for i in items] == ['folder "q" \\ ü', *sorted(names)]
    for item in items:
        assert ChildOut.model_validate(item).model_dump(mode="json") == item
    token = link(ann, "VIEW", folder_id=top)["token"]
    shared = api.client.get(f"/api/v1/links/{token}")
    assert shared.status_code == 200, shared.text
    assert shared.json()["items"] == items
