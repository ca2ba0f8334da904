"""Comments: VIEW reads them, COMMENT or more writes them, nobody else knows they exist."""

from __future__ import annotations

from sqlalchemy import select

from docstore.audit.models import AuditLog
from tests.fixtures.app import Api
from tests.sharing.helpers import API, code, share_with, upload


def test_view_reads_comment_writes_and_strangers_see_nothing(api: Api) -> None:
    ann, viewer, critic, eve = (api.register(n) for n in ("ann", "viewer", "critic", "eve"))
    doc = upload(ann, "essay.txt", b"draft 1")
    v1 = doc["current_version"]["id"]
    other = upload(ann, "other.txt", b"x")
    share_with(ann, viewer, "VIEW", document_id=doc["id"])
    share_with(ann, critic, "COMMENT", document_id=doc["id"])
    url = f"{API}/documents/{doc['id']}/comments"

    r = critic.post(url, json={"body": "  Nice opening.  ", "version_id": v1})
    assert r.status_code == 201, r.text
    first = r.json()
    assert first["body"] == "Nice opening." and first["author_id"] == critic.id
    assert first["version_id"] == v1 and first["document_id"] == doc["id"]
    assert ann.post(url, json={"body": "Thanks!"}).status_code == 201

    assert code(viewer.post(url, json={"body": "me too"})) == (403, "forbidden")
    assert code(eve.post(url, json={"body": "hi"})) == (404, "not_found")
    assert code(eve.get(url)) == (404, "not_found")
    r = viewer.get(url)
    assert r.status_code == 200
    assert [(c["author_id"], c["body"]) for c in r.json()["items"]] == [
        (critic.id, "Nice opening."),
        (ann.id, "Thanks!"),
    ]

    # A version of another document, an empty or an oversized body are refused.
    bad_version = {"body": "x", "version_id": other["current_version"]["id"]}
    assert code(critic.post(url, json=bad_version)) == (422, "validation_error")
    assert critic.post(url, json={"body": "   "}).status_code == 422
    assert critic.post(url, json={"body": "x" * 10_001}).status_code == 422

    # Oldest first, paged.
    for i in range(3):
        critic.post(url, json={"body": f"note {i}"})
    page = ann.get(url, params={"limit": 2}).json()
    assert [c["body"] for c in page["items"]] == ["Nice opening.", "Thanks!"]
    rest = ann.get(url, params={"limit": 2, "cursor": page["next_cursor"]}).json()
    assert [c["body"] for c in rest["items"]] == ["note 0", "note 1"]

    # Trashed documents take their comments out of sight for everyone but the owner.
    assert ann.delete(f"{API}/documents/{doc['id']}").status_code == 204
    assert critic.get(url).status_code == 404

    database = api.client.app.state.services.database  # type: ignore[attr-defined]
    with database.transaction() as db:
        entries = list(db.scalars(select(AuditLog).where(AuditLog.action == "COMMENT")))
    assert len(entries) == 5
    assert entries[0].user_id == critic.id and entries[0].owner_id == ann.id
    assert entries[0].details == {"comment_id": first["id"], "version_id": v1}
