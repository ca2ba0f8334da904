"""Versions: optimistic locking, conflict copies, 3-way merge, restore, pin, delete."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from tests.fixtures.app import Api, User


def _objects(api: Api) -> int:
    store = api.client.app.state.services.store  # type: ignore[attr-defined]
    return len(list(store.iter_objects()))


def _save(u: User, doc_id: int, data: bytes, **params: object) -> object:
    return u.post(f"/api/v1/documents/{doc_id}/versions", params=params, content=data)


def test_save_conflict_copy_merge_restore_delete(api: Api) -> None:
    version_scenario(api, lambda: _objects(api))


def version_scenario(api: Api, objects: Callable[[], int]) -> None:
    """The issue's walk-through; run in-process here and against the real server in e2e."""
    ann = api.register("ann")
    doc = ann.upload("notes.txt", b"a\nb\nc\n").json()
    v1 = doc["current_version"]["id"]

    r = _save(ann, doc["id"], b"A\nb\nc\n", base_version_id=v1)
    assert r.status_code == 201 and r.json()["resolution"] == "saved"
    v2 = r.json()["version"]["id"]
    assert r.json()["version"]["version_number"] == 2

    r = _save(ann, doc["id"], b"a\nb\nC\n", base_version_id=v1)
    assert r.status_code == 409
    assert r.json()["code"] == "version_conflict" and r.json()["current_version_id"] == v2

    r = _save(ann, doc["id"], b"incoming", base_version_id=v1, on_conflict="copy")
    assert r.status_code == 201 and r.json()["resolution"] == "conflict_copy"
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    assert r.json()["document"]["name"] == f"notes (conflict copy by Ann {today}).txt"
    assert ann.download(r.json()["document"]["id"]).content == b"incoming"
    r = _save(ann, doc["id"], b"again", base_version_id=v1, on_conflict="copy")
    assert r.json()["document"]["name"] == f"notes (conflict copy by Ann {today}) 2.txt"

    r = _save(ann, doc["id"], b"a\nb\nC\n", base_version_id=v1, on_conflict="merge")
    assert r.status_code == 201, r.text
    assert r.json()["resolution"] == "merged"
    v3 = r.json()["version"]
    assert v3["version_number"] == 3
    assert ann.download(doc["id"]).content == b"A\nb\nC\n"

    count = len(ann.get(f"/api/v1/documents/{doc['id']}/versions").json()["items"])
    r = _save(ann, doc["id"], b"X\nb\nc\n", base_version_id=v1, on_conflict="merge")
    assert r.status_code == 409 and r.json()["code"] == "merge_conflict"
    assert r.json()["current_version_id"] == v3["id"] and r.json()["conflicts"] == 1
    assert len(ann.get(f"/api/v1/documents/{doc['id']}/versions").json()["items"]) == count

    before = objects()
    used = ann.me()["used_bytes"]
    r = ann.post(f"/api/v1/documents/{doc['id']}/versions/{v1}/restore")
    assert r.status_code == 201
    assert r.json()["version"]["version_number"] == 4
    assert ann.download(doc["id"]).content == b"a\nb\nc\n"
    assert objects() == before
    assert ann.me()["used_bytes"] == used + 6

    versions = ann.get(f"/api/v1/documents/{doc['id']}/versions").json()["items"]
    assert [v["version_number"] for v in versions] == [4, 3, 2, 1]
    assert [v["is_current"] for v in versions] == [True, False, False, False]
    assert all("storage_key" not in v for v in versions)
    v4 = versions[0]["id"]
    r = ann.delete(f"/api/v1/documents/{doc['id']}/versions/{v4}")
    assert r.status_code == 409
    used = ann.me()["used_bytes"]
    assert ann.delete(f"/api/v1/documents/{doc['id']}/versions/{v2}").status_code == 204
    assert ann.download(doc["id"], version_id=v2).status_code == 404
    assert ann.me()["used_bytes"] == used - 6
    assert ann.download(doc["id"], version_id=v1).content == b"a\nb\nc\n"

    r = ann.patch(f"/api/v1/documents/{doc['id']}/versions/{v1}", json={"keep_forever": True})
    assert r.status_code == 200 and r.json()["keep_forever"] is True


def test_if_match_and_etag(api: Api) -> None:
    ann = api.register()
    doc = ann.upload("e.txt", b"1").json()
    etag = ann.get(f"/api/v1/documents/{doc['id']}").headers["etag"]
    r = ann.post(
        f"/api/v1/documents/{doc['id']}/versions", content=b"2", headers={"If-Match": etag}
    )
    assert r.status_code == 201
    r = ann.post(
        f"/api/v1/documents/{doc['id']}/versions", content=b"3", headers={"If-Match": etag}
    )
    assert r.status_code == 409 and r.json()["code"] == "version_conflict"
    r = ann.post(
        f"/api/v1/documents/{doc['id']}/versions", content=b"3", headers={"If-Match": "nonsense"}
    )
    assert r.status_code == 400
    # No base at all: an unconditional save.
    assert ann.post(f"/api/v1/documents/{doc['id']}/versions", content=b"4").status_code == 201


def test_merge_refuses_binary_and_line_endings_do_not_conflict(api: Api) -> None:
    ann = api.register()
    binary = ann.upload("img.png", b"\x89PNG....").json()
    v1 = binary["current_version"]["id"]
    assert _save(ann, binary["id"], b"x", base_version_id=v1).status_code == 201
    r = _save(ann, binary["id"], b"y", base_version_id=v1, on_conflict="merge")
    assert r.status_code == 409 and r.json()["code"] == "merge_conflict"
    assert "text" in r.json()["detail"]

    doc = ann.upload("crlf.md", b"one\r\ntwo\r\nthree").json()
    base = doc["current_version"]["id"]
    assert _save(ann, doc["id"], b"ONE\r\ntwo\r\nthree", base_version_id=base).status_code == 201
    r = _save(ann, doc["id"], b"one\ntwo\nTHREE\n", base_version_id=base, on_conflict="merge")
    assert r.status_code == 201, r.text
    assert ann.download(doc["id"]).content == b"ONE\ntwo\nTHREE\n"


def test_versions_are_not_visible_to_strangers(api: Api) -> None:
    ann, bob = api.register(), api.register()
    doc = ann.upload("s.txt", b"s").json()
    v1 = doc["current_version"]["id"]
    for method, url in (
        ("GET", f"/api/v1/documents/{doc['id']}/versions"),
        ("POST", f"/api/v1/documents/{doc['id']}/versions"),
        ("POST", f"/api/v1/documents/{doc['id']}/versions/{v1}/restore"),
        ("PATCH", f"/api/v1/documents/{doc['id']}/versions/{v1}"),
        ("DELETE", f"/api/v1/documents/{doc['id']}/versions/{v1}"),
    ):
        kw = {"json": {"keep_forever": True}} if method == "PATCH" else {}
        if method == "POST" and url.endswith("versions"):
            kw = {"content": b"x"}
        assert bob.request(method, url, **kw).status_code == 404, url
    # A version id from another document is not found through this one.
    other = ann.upload("o.txt", b"o").json()
    r = ann.get(f"/api/v1/documents/{other['id']}/download", params={"version_id": v1})
    assert r.status_code == 404
