"""Sharing through the HTTP API in-process: who may share, what a share grants, what
an owner and a sharee see, links (token, password, expiry) and the audit trail."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, update

from docstore.audit.models import AuditLog
from docstore.sharing.models import Share
from tests.fixtures.app import Api
from tests.sharing.helpers import (
    API,
    code,
    in_seconds,
    link,
    share_with,
    tree,
    upload,
)


def _db(api: Api) -> Any:
    return api.client.app.state.services.database  # type: ignore[attr-defined]


def _audit(api: Api, action: str) -> list[AuditLog]:
    with _db(api).transaction() as db:
        return list(db.scalars(select(AuditLog).where(AuditLog.action == action)))


def test_only_the_owner_shares_and_nobody_gets_more_than_granted(api: Api) -> None:
    ann, bob, cat, eve = (api.register(n) for n in ("ann", "bob", "cat", "eve"))
    (team,) = tree(ann, "team")
    doc = upload(ann, "plan.txt", b"v1", team["id"])
    share_with(ann, bob, "EDIT", folder_id=team["id"])

    # An EDIT sharee can edit but cannot share, not even at a lower level; a stranger
    # cannot tell the item exists.
    r = bob.post(
        f"{API}/shares", json={"document_id": doc["id"], "permission": "VIEW", "email": cat.email}
    )
    assert code(r) == (403, "forbidden")
    r = bob.post(
        f"{API}/shares", json={"folder_id": team["id"], "permission": "EDIT", "link": True}
    )
    assert code(r) == (403, "forbidden")
    r = eve.post(f"{API}/shares", json={"document_id": doc["id"], "permission": "VIEW",
                                        "email": cat.email})  # fmt: skip
    assert code(r) == (404, "not_found")
    assert code(bob.get(f"{API}/folders/{team['id']}/shares")) == (403, "forbidden")
    assert code(eve.get(f"{API}/documents/{doc['id']}/shares")) == (404, "not_found")
    assert cat.get(f"{API}/documents/{doc['id']}").status_code == 404

    # Bad requests: both or neither target, email and link together, own email, the root,
    # a password on a person share, an expiry in the past.
    for body, status in [
        ({"permission": "VIEW", "email": cat.email}, 422),
        ({"document_id": doc["id"], "folder_id": team["id"], "permission": "VIEW",
          "email": cat.email}, 422),
        ({"document_id": doc["id"], "permission": "VIEW", "email": cat.email, "link": True}, 422),
        ({"document_id": doc["id"], "permission": "VIEW", "email": ann.email}, 422),
        ({"folder_id": ann.root, "permission": "VIEW", "email": cat.email}, 422),
        ({"document_id": doc["id"], "permission": "VIEW", "email": cat.email,
          "password": "x"}, 422),
        ({"document_id": doc["id"], "permission": "VIEW", "email": cat.email,
          "expires_at": in_seconds(-5)}, 422),
        ({"document_id": doc["id"], "permission": "OWNER", "email": cat.email}, 422),
    ]:  # fmt: skip
        assert ann.post(f"{API}/shares", json=body).status_code == status, body

    # Sharing again with the same person changes their share instead of adding one.
    first = share_with(ann, cat, "VIEW", document_id=doc["id"])
    again = share_with(ann, cat.email.upper(), "COMMENT", document_id=doc["id"])
    assert again["id"] == first["id"] and again["permission"] == "COMMENT"
    listed = ann.get(f"{API}/documents/{doc['id']}/shares").json()["items"]
    assert [(s["user_id"], s["permission"]) for s in listed] == [(cat.id, "COMMENT")]
    assert cat.get(f"{API}/documents/{doc['id']}").json()["permission"] == "COMMENT"
    assert bob.get(f"{API}/documents/{doc['id']}").json()["permission"] == "EDIT"


def test_share_levels_decide_each_action(api: Api) -> None:
    ann, viewer, editor = api.register("ann"), api.register("viewer"), api.register("editor")
    (team, sub) = tree(ann, "team", "sub")
    doc = upload(ann, "a.txt", b"one", sub["id"])
    share_with(ann, viewer, "VIEW", folder_id=team["id"])
    edit_share = share_with(ann, editor, "EDIT", document_id=doc["id"])

    assert viewer.get(f"{API}/folders/{sub['id']}/children").status_code == 200
    assert viewer.download(doc["id"]).content == b"one"
    r = viewer.post(f"{API}/documents/{doc['id']}/versions", content=b"two")
    assert code(r) == (403, "forbidden")
    r = viewer.patch(f"{API}/documents/{doc['id']}", json={"name": "b.txt"})
    assert code(r) == (403, "forbidden")
    r = viewer.post(f"{API}/folders", json={"name": "new", "parent_id": sub["id"]})
    assert code(r) == (403, "forbidden")

    # A document share covers that document only, not its folder.
    assert editor.post(f"{API}/documents/{doc['id']}/versions", content=b"two").status_code == 201
    assert editor.get(f"{API}/folders/{sub['id']}").status_code == 404
    assert code(editor.delete(f"{API}/documents/{doc['id']}")) == (403, "forbidden")

    # Downgrade EDIT -> VIEW: the very next save is refused.
    r = editor.patch(f"{API}/shares/{edit_share['id']}", json={"permission": "VIEW"})
    assert code(r) == (403, "forbidden")  # only the owner changes shares
    r = ann.patch(f"{API}/shares/{edit_share['id']}", json={"permission": "view"})
    assert r.status_code == 200 and r.json()["permission"] == "VIEW"
    r = editor.post(f"{API}/documents/{doc['id']}/versions", content=b"three")
    assert code(r) == (403, "forbidden")

    # Revoke: the next request cannot see the document at all; revoking again is harmless.
    assert ann.delete(f"{API}/shares/{edit_share['id']}").status_code == 204
    assert editor.get(f"{API}/documents/{doc['id']}").status_code == 404
    assert ann.delete(f"{API}/shares/{edit_share['id']}").status_code == 204
    r = ann.patch(f"{API}/shares/{edit_share['id']}", json={"permission": "EDIT"})
    assert r.status_code == 409
    assert ann.get(f"{API}/documents/{doc['id']}/shares").json()["items"] == []


def test_folder_share_covers_the_subtree_and_follows_moves_and_trash(api: Api) -> None:
    ann, bob = api.register("ann"), api.register("bob")
    team, a, b, c = tree(ann, "team", "a", "b", "c")
    outside = ann.mkdir("outside")
    share_with(ann, bob, "VIEW", folder_id=team["id"])
    early = upload(ann, "early.txt", b"1", c["id"])
    assert bob.get(f"{API}/documents/{early['id']}").status_code == 200
    later = upload(ann, "later.txt", b"2", c["id"])
    assert bob.get(f"{API}/documents/{later['id']}").status_code == 200
    assert bob.get(f"{API}/folders/{c['id']}").json()["permission"] == "VIEW"

    # Moving the document out of the shared folder ends the access at once (warm cache).
    r = ann.patch(f"{API}/documents/{later['id']}", json={"parent_folder_id": outside["id"]})
    assert r.status_code == 200
    assert bob.get(f"{API}/documents/{later['id']}").status_code == 404
    # ... and moving a folder out takes its subtree along.
    r = ann.patch(f"{API}/folders/{b['id']}", json={"parent_id": outside["id"]})
    assert r.status_code == 200
    assert bob.get(f"{API}/documents/{early['id']}").status_code == 404
    assert bob.get(f"{API}/folders/{c['id']}").status_code == 404
    # Moving it back in grants again.
    assert ann.patch(f"{API}/folders/{b['id']}", json={"parent_id": a["id"]}).status_code == 200
    assert bob.get(f"{API}/documents/{early['id']}").status_code == 200

    # Trash hides the item from the sharee; a restore brings the access back.
    assert ann.delete(f"{API}/folders/{a['id']}").status_code == 204
    assert bob.get(f"{API}/documents/{early['id']}").status_code == 404
    assert ann.post(f"{API}/folders/{a['id']}/restore").status_code == 200
    assert bob.get(f"{API}/documents/{early['id']}").status_code == 200

    # An EDIT sharee's upload into the shared folder belongs to the folder's owner.
    share_with(ann, bob, "EDIT", folder_id=team["id"])
    mine = upload(bob, "from-bob.txt", b"bob", c["id"])
    assert mine["owner_id"] == ann.id and mine["permission"] == "EDIT"
    assert bob.me()["used_bytes"] == 0


def test_access_explains_owner_direct_and_folder_shares(api: Api) -> None:
    ann, bob, cat = api.register("ann"), api.register("bob"), api.register("cat")
    team, inner = tree(ann, "team", "inner")
    doc = upload(ann, "d.txt", b"x", inner["id"])
    outer_share = share_with(ann, bob, "VIEW", folder_id=team["id"])
    inner_share = share_with(ann, bob, "COMMENT", folder_id=inner["id"])
    direct = share_with(ann, bob, "VIEW", document_id=doc["id"])

    r = bob.get(f"{API}/documents/{doc['id']}/access")
    assert r.status_code == 200
    body = r.json()
    assert body["permission"] == "COMMENT" and body["user_id"] == bob.id
    assert [(v["kind"], v["share_id"], v.get("folder_id")) for v in body["via"]] == [
        ("folder", inner_share["id"], inner["id"]),
        ("direct", direct["id"], None),
        ("folder", outer_share["id"], team["id"]),
    ]
    owner = ann.get(f"{API}/documents/{doc['id']}/access").json()
    assert owner["permission"] == "OWNER" and owner["via"][0]["kind"] == "owner"
    # The owner may ask about anyone; a sharee only about themselves; a stranger sees nothing.
    about_bob = ann.get(f"{API}/documents/{doc['id']}/access", params={"user_id": bob.id})
    assert about_bob.json() == body
    about_cat = ann.get(f"{API}/documents/{doc['id']}/access", params={"user_id": cat.id}).json()
    assert about_cat["permission"] == "NONE" and about_cat["via"] == []
    r = bob.get(f"{API}/documents/{doc['id']}/access", params={"user_id": ann.id})
    assert code(r) == (403, "forbidden")
    assert cat.get(f"{API}/documents/{doc['id']}/access").status_code == 404


def test_shared_with_me_lists_live_active_grants(api: Api) -> None:
    ann, bob = api.register("ann"), api.register("bob")
    (team,) = tree(ann, "team")
    d1 = upload(ann, "one.txt", b"1")
    d2 = upload(ann, "two.txt", b"2")
    d3 = upload(ann, "three.txt", b"3")
    share_with(ann, bob, "EDIT", folder_id=team["id"])
    share_with(ann, bob, "VIEW", document_id=d1["id"])
    s2 = share_with(ann, bob, "VIEW", document_id=d2["id"])
    s3 = share_with(ann, bob, "VIEW", document_id=d3["id"], expires_at=in_seconds(3600))
    ann.delete(f"{API}/shares/{s2['id']}")
    with _db(api).transaction() as db:
        past = datetime.now(UTC) - timedelta(seconds=1)
        db.execute(update(Share).where(Share.id == s3["id"]).values(expires_at=past))
    assert ann.delete(f"{API}/documents/{d1['id']}").status_code == 204

    r = bob.get(f"{API}/shared-with-me")
    assert r.status_code == 200
    items = r.json()["items"]
    assert [(i["kind"], i["id"], i["permission"]) for i in items] == [
        ("folder", team["id"], "EDIT")
    ]
    assert items[0]["name"] == "team" and items[0]["shared_by"] == ann.id
    assert ann.get(f"{API}/shared-with-me").json()["items"] == []
    assert bob.get(f"{API}/documents/{d3['id']}").status_code == 404

    # Paging: newest share first, the cursor continues.
    more = [upload(ann, f"p{i}.txt", b"p") for i in range(3)]
    for d in more:
        share_with(ann, bob, "VIEW", document_id=d["id"])
    page = bob.get(f"{API}/shared-with-me", params={"limit": 2}).json()
    assert [i["id"] for i in page["items"]] == [more[2]["id"], more[1]["id"]]
    rest = bob.get(f"{API}/shared-with-me", params={"cursor": page["next_cursor"]}).json()
    assert [i["id"] for i in rest["items"]] == [more[0]["id"], team["id"]]
    assert rest["next_cursor"] is None
    assert code(bob.get(f"{API}/shared-with-me", params={"cursor": "nope"})) == (400, "bad_request")


def test_pending_email_share_applies_only_once_the_address_is_verified(api: Api) -> None:
    ann = api.register("ann")
    doc = upload(ann, "welcome.txt", b"hi")
    pending = share_with(ann, "Newcomer@Example.com", "COMMENT", document_id=doc["id"])
    assert pending["kind"] == "email" and pending["user_id"] is None
    assert pending["email"] == "newcomer@example.com"
    # Registering the address proves nothing: the share still waits.
    newcomer = api.register("newcomer", verify=False)
    assert code(newcomer.get(f"{API}/documents/{doc['id']}")) == (404, "not_found")
    listed = ann.get(f"{API}/documents/{doc['id']}/shares").json()["items"]
    assert [(s["kind"], s["user_id"]) for s in listed] == [("email", None)]
    # The mailed link proves it: the share is the account's now.
    api.verify_email(newcomer.email)
    r = newcomer.get(f"{API}/documents/{doc['id']}")
    assert r.status_code == 200 and r.json()["permission"] == "COMMENT"
    listed = ann.get(f"{API}/documents/{doc['id']}/shares").json()["items"]
    assert [(s["kind"], s["user_id"]) for s in listed] == [("user", newcomer.id)]


def test_link_token_and_password_are_stored_hashed_and_never_returned(api: Api) -> None:
    ann = api.register("ann")
    doc = upload(ann, "secret.txt", b"s3cret")
    created = link(ann, "VIEW", document_id=doc["id"], password="open sesame")
    token = created["token"]
    assert len(token) >= 22 and created["url"].endswith(f"/api/v1/links/{token}")
    assert created["has_password"] is True and "open sesame" not in str(created)
    with _db(api).transaction() as db:
        row = db.get_one(Share, created["id"])
        assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
        assert row.password_hash is not None and row.password_hash.startswith("$argon2")
    listed = ann.get(f"{API}/documents/{doc['id']}/shares").json()["items"]
    assert listed[0]["token"] is None and listed[0]["url"] is None
    assert token not in ann.get(f"{API}/documents/{doc['id']}/shares").text
    second = link(ann, "VIEW", document_id=doc["id"])
    assert second["token"] != token

    c = api.client
    assert code(c.get(f"{API}/links/{token}")) == (403, "link_password_required")
    r = c.get(f"{API}/links/{token}", headers={"X-Link-Password": "wrong"})
    assert code(r) == (403, "link_password_invalid")
    r = c.get(f"{API}/links/{token}", headers={"X-Link-Password": "open sesame"})
    assert r.status_code == 200 and r.json()["document"]["id"] == doc["id"]
    assert r.json()["access"]["via"] == [
        {"kind": "link", "share_id": created["id"], "folder_id": None, "permission": "VIEW"}
    ]
    assert code(c.get(f"{API}/links/{token}x")) == (404, "not_found")
    # A link is not a bearer token for the rest of the API.
    r = c.get(f"{API}/documents/{doc['id']}", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401


def test_link_password_rate_limit_per_token_and_address(api: Api) -> None:
    ann = api.register("ann")
    doc = upload(ann, "d.txt", b"d")
    first = link(ann, "VIEW", document_id=doc["id"], password="right")
    others = [link(ann, "VIEW", document_id=doc["id"], password="other") for _ in range(3)]
    c = api.client
    url = f"{API}/links/{first['token']}"
    for _ in range(10):
        r = c.get(url, headers={"X-Link-Password": "wrong"})
        assert code(r) == (403, "link_password_invalid")
    assert code(c.get(url, headers={"X-Link-Password": "wrong"})) == (429, "rate_limited")
    assert code(c.get(url, headers={"X-Link-Password": "right"})) == (429, "rate_limited")
    # The same client address is limited on every link, at 30 failures across links.
    other_url = f"{API}/links/{others[0]['token']}"
    assert c.get(other_url, headers={"X-Link-Password": "other"}).status_code == 200
    for other in others[:2]:
        for _ in range(10):
            r = c.get(f"{API}/links/{other['token']}", headers={"X-Link-Password": "wrong"})
            assert code(r) == (403, "link_password_invalid")
    r = c.get(f"{API}/links/{others[2]['token']}", headers={"X-Link-Password": "other"})
    assert code(r) == (429, "rate_limited")
    failed = [e for e in _audit(api, "LOGIN_FAILED") if e.share_id == first["id"]]
    assert len(failed) == 10
    assert failed[0].document_id == doc["id"] and failed[0].owner_id == ann.id
    assert failed[0].ip_address is not None


def test_link_expiry_and_revocation_answer_410(api: Api) -> None:
    ann = api.register("ann")
    doc = upload(ann, "d.txt", b"d")
    soon = link(ann, "VIEW", document_id=doc["id"], expires_at=in_seconds(120))
    c = api.client
    r = c.get(f"{API}/links/{soon['token']}/download", params={"redirect": "false"})
    assert r.status_code == 200
    # The signed URL never outlives the link.
    link_end = datetime.fromisoformat(soon["expires_at"])
    assert datetime.fromisoformat(r.json()["expires_at"]) <= link_end + timedelta(seconds=1)
    with _db(api).transaction() as db:
        past = datetime.now(UTC) - timedelta(seconds=1)
        db.execute(update(Share).where(Share.id == soon["id"]).values(expires_at=past))
    assert code(c.get(f"{API}/links/{soon['token']}")) == (410, "link_expired")
    assert code(c.get(f"{API}/links/{soon['token']}/download")) == (410, "link_expired")

    revoked = link(ann, "EDIT", document_id=doc["id"])
    assert c.get(f"{API}/links/{revoked['token']}").status_code == 200
    assert ann.delete(f"{API}/shares/{revoked['id']}").status_code == 204
    assert code(c.get(f"{API}/links/{revoked['token']}")) == (410, "link_expired")
    r = c.post(f"{API}/links/{revoked['token']}/versions", content=b"new")
    assert code(r) == (410, "link_expired")
    # Trashing the document hides it from its links.
    live = link(ann, "VIEW", document_id=doc["id"])
    assert ann.delete(f"{API}/documents/{doc['id']}").status_code == 204
    assert c.get(f"{API}/links/{live['token']}").status_code == 404


def test_folder_link_browses_and_downloads_the_subtree_only(api: Api) -> None:
    ann = api.register("ann")
    team, sub = tree(ann, "team", "sub")
    inside = upload(ann, "in.txt", b"inside", sub["id"])
    outside = upload(ann, "out.txt", b"outside")
    view = link(ann, "VIEW", folder_id=team["id"])
    c = api.client
    top = c.get(f"{API}/links/{view['token']}").json()
    assert top["kind"] == "folder" and top["folder"]["id"] == team["id"]
    assert [(i["kind"], i["name"]) for i in top["items"]] == [("folder", "sub")]
    below = c.get(f"{API}/links/{view['token']}", params={"folder_id": sub["id"]}).json()
    assert [i["name"] for i in below["items"]] == ["in.txt"]
    r = c.get(f"{API}/links/{view['token']}", params={"folder_id": ann.root})
    assert r.status_code == 404
    r = c.get(f"{API}/links/{view['token']}/download", params={"document_id": inside["id"]})
    assert r.status_code == 307 and c.get(r.headers["location"]).content == b"inside"
    r = c.get(f"{API}/links/{view['token']}/download", params={"document_id": outside["id"]})
    assert r.status_code == 404
    assert c.get(f"{API}/links/{view['token']}/download").status_code == 422
    r = c.post(
        f"{API}/links/{view['token']}/versions", params={"document_id": inside["id"]}, content=b"x"
    )
    assert code(r) == (403, "forbidden")

    edit = link(ann, "EDIT", folder_id=team["id"])
    r = c.post(
        f"{API}/links/{edit['token']}/versions",
        params={"document_id": inside["id"], "base_version_id": inside["current_version"]["id"]},
        content=b"edited via link",
    )
    assert r.status_code == 201, r.text
    assert ann.download(inside["id"]).content == b"edited via link"
    assert r.json()["version"]["created_by"] is None
    # A stale base through a link is a conflict like any other save.
    r = c.post(
        f"{API}/links/{edit['token']}/versions",
        params={"document_id": inside["id"], "base_version_id": inside["current_version"]["id"]},
        content=b"stale",
    )
    assert code(r) == (409, "version_conflict")


def test_share_changes_are_audited(api: Api) -> None:
    ann, bob = api.register("ann"), api.register("bob")
    doc = upload(ann, "d.txt", b"d")
    s = share_with(ann, bob, "EDIT", document_id=doc["id"])
    ann.patch(f"{API}/shares/{s['id']}", json={"permission": "VIEW"})
    ann.delete(f"{API}/shares/{s['id']}")
    shares = _audit(api, "SHARE")
    assert [(e.details or {}).get("permission") for e in shares] == ["EDIT", "VIEW"]
    assert all((e.details or {}).get("grantee") == bob.id for e in shares)
    assert all(e.owner_id == ann.id and e.document_id == doc["id"] for e in shares)
    (unshare,) = _audit(api, "UNSHARE")
    assert unshare.share_id == s["id"] and unshare.user_id == ann.id
