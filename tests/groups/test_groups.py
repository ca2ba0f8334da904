"""Groups through the HTTP API in-process, on SQLite and PostgreSQL: who may see and change
a group, what a share to a group grants its members (the same inheritance as a direct
share, the highest of all grants), the access explanation, revocation on the next request
(membership removal, group deletion, unshare) and the audit trail."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from docstore.audit.models import AuditLog
from docstore.context import Actor
from docstore.documents.models import Document
from docstore.folders.models import Folder
from docstore.sharing.permissions import Level, readable
from docstore.users.models import User as UserRow
from tests.fixtures.app import Api
from tests.groups.helpers import add, new_group, share_to_group
from tests.sharing.helpers import API, code, share_with, tree, upload


def _db(api: Api) -> Any:
    return api.client.app.state.services.database  # type: ignore[attr-defined]


def _audit(api: Api, action: str) -> list[AuditLog]:
    with _db(api).transaction() as db:
        return list(db.scalars(select(AuditLog).where(AuditLog.action == action)))


def _members(group: dict[str, Any]) -> tuple[list[int], list[int]]:
    return [u["id"] for u in group["managers"]], [u["id"] for u in group["members"]]


def test_creating_a_group_and_its_membership_rules(api: Api) -> None:
    ann, bob, cat, dan = (api.register(n) for n in ("ann", "bob", "cat", "dan"))
    g = new_group(ann, "  Design  ")
    assert g["name"] == "Design" and g["is_manager"] is True
    assert _members(g) == ([ann.id], [ann.id])
    assert g["managers"][0] == {"id": ann.id, "name": "Ann", "email": ann.email}
    for bad in ("", "   ", "a\x00b", "x\u202eexe", "n" * 201, "Design\n", "\tDesign"):
        r = ann.post(f"{API}/groups", json={"name": bad})
        assert code(r) == (422, "validation_error"), bad
    assert code(ann.post(f"{API}/groups", json={})) == (422, "validation_error")

    members = f"{API}/groups/{g['id']}/members"
    add(ann, g, bob)
    r = ann.post(members, json={"user_id": cat.id, "manager": True})
    assert r.status_code == 201
    assert _members(r.json()) == ([ann.id, cat.id], [ann.id, bob.id, cat.id])
    # Bad bodies, unknown accounts, members already in.
    assert code(ann.post(members, json={})) == (422, "validation_error")
    both = {"email": dan.email, "user_id": dan.id}
    assert code(ann.post(members, json=both)) == (422, "validation_error")
    assert code(ann.post(members, json={"email": "nobody@example.com"})) == (404, "not_found")
    assert code(ann.post(members, json={"user_id": 10**12})) == (404, "not_found")
    assert code(ann.post(members, json={"email": bob.email})) == (409, "conflict")

    # Who sees the group: its members and managers; everyone else gets 404.
    one = f"{API}/groups/{g['id']}"
    assert bob.get(one).status_code == 200 and bob.get(one).json()["is_manager"] is False
    assert code(dan.get(one)) == (404, "not_found")
    assert code(dan.get(f"{API}/groups/{10**12}")) == (404, "not_found")
    assert [x["id"] for x in bob.get(f"{API}/groups").json()["items"]] == [g["id"]]
    assert dan.get(f"{API}/groups").json()["items"] == []

    # Managers change membership: a stranger 404, a plain member 403.
    assert code(dan.post(members, json={"email": dan.email})) == (404, "not_found")
    assert code(bob.post(members, json={"email": dan.email})) == (403, "forbidden")
    assert code(bob.delete(f"{members}/{cat.id}")) == (403, "forbidden")
    assert code(dan.delete(f"{members}/{bob.id}")) == (404, "not_found")
    assert code(ann.delete(f"{members}/{dan.id}")) == (404, "not_found")
    assert code(bob.delete(one)) == (403, "forbidden")
    assert code(dan.delete(one)) == (404, "not_found")

    # A member may leave; the last manager may not (nor stop being one).
    assert bob.delete(f"{members}/{bob.id}").status_code == 204
    assert code(bob.get(one)) == (404, "not_found")
    assert ann.delete(f"{members}/{ann.id}").status_code == 204
    r = cat.delete(f"{members}/{cat.id}")
    assert code(r) == (409, "conflict") and "manager" in r.json()["detail"]
    r = cat.post(members, json={"user_id": cat.id, "manager": False})
    assert code(r) == (409, "conflict")
    add(cat, g, bob, manager_flag=True)
    r = cat.post(members, json={"user_id": bob.id, "manager": False})
    assert r.status_code == 201 and _members(r.json())[0] == [cat.id]

    # Paging of GET /groups.
    more = [new_group(bob, f"g{i}") for i in range(3)]
    page = bob.get(f"{API}/groups", params={"limit": 2}).json()
    assert [x["id"] for x in page["items"]] == [g["id"], more[0]["id"]]
    rest = bob.get(f"{API}/groups", params={"cursor": page["next_cursor"]}).json()
    assert [x["id"] for x in rest["items"]] == [more[1]["id"], more[2]["id"]]

    assert cat.delete(one).status_code == 204
    assert code(cat.get(one)) == (404, "not_found")
    assert code(bob.get(one)) == (404, "not_found")

    (created,) = [e for e in _audit(api, "GROUP_CREATE") if e.details["group_id"] == g["id"]]
    assert created.user_id == ann.id and created.details["group_name"] == "Design"
    added = [e.details["member_id"] for e in _audit(api, "GROUP_MEMBER_ADD")]
    assert added == [bob.id, cat.id, bob.id, bob.id]
    removed = _audit(api, "GROUP_MEMBER_REMOVE")
    assert [(e.user_id, e.details.get("member_id")) for e in removed[:2]] == [
        (bob.id, bob.id),
        (ann.id, ann.id),
    ]
    deleted = removed[-1]  # deleting the group removes every member: one entry
    assert deleted.user_id == cat.id and deleted.details["group_id"] == g["id"]
    assert deleted.details["group_deleted"] is True
    assert deleted.details["member_ids"] == sorted([cat.id, bob.id])


def test_a_folder_share_to_a_group_reaches_every_member_like_a_direct_share(api: Api) -> None:
    ann, bob, cat, dan = (api.register(n) for n in ("ann", "bob", "cat", "dan"))
    team, sub = tree(ann, "team", "sub")
    doc = upload(ann, "d.txt", b"x", sub["id"])
    g = new_group(ann, "Design")
    add(ann, g, bob)
    add(ann, g, cat)
    s = share_to_group(ann, g, "COMMENT", folder_id=team["id"])
    assert s["kind"] == "group" and s["group_id"] == g["id"] and s["group_name"] == "Design"
    assert s["user_id"] is None and s["email"] is None

    for member in (bob, cat):
        r = member.get(f"{API}/documents/{doc['id']}")
        assert r.status_code == 200 and r.json()["permission"] == "COMMENT"
        assert member.download(doc["id"]).content == b"x"
        assert member.get(f"{API}/folders/{sub['id']}/children").status_code == 200
    assert code(dan.get(f"{API}/documents/{doc['id']}")) == (404, "not_found")
    assert code(dan.get(f"{API}/folders/{team['id']}")) == (404, "not_found")
    r = bob.post(f"{API}/documents/{doc['id']}/comments", json={"body": "hi"})
    assert r.status_code == 201
    r = bob.post(f"{API}/documents/{doc['id']}/versions", content=b"y")
    assert code(r) == (403, "forbidden")
    # Items added later are covered, as with any folder share.
    later = upload(ann, "later.txt", b"l", sub["id"])
    assert cat.get(f"{API}/documents/{later['id']}").status_code == 200

    # Shared with me: the group's share, with the group named.
    items = bob.get(f"{API}/shared-with-me").json()["items"]
    assert [(i["kind"], i["id"], i["permission"], i["group_id"]) for i in items] == [
        ("folder", team["id"], "COMMENT", g["id"])
    ]
    # The manager who shared sees it as the owner, not as shared with them.
    assert ann.get(f"{API}/shared-with-me").json()["items"] == []

    # The effective level is the highest of all grants: direct, folder, several groups.
    direct = share_with(ann, bob, "VIEW", document_id=doc["id"])
    assert bob.get(f"{API}/documents/{doc['id']}").json()["permission"] == "COMMENT"
    editors = new_group(ann, "Editors")
    add(ann, editors, bob)
    on_sub = share_to_group(ann, editors, "EDIT", folder_id=sub["id"])
    assert bob.get(f"{API}/documents/{doc['id']}").json()["permission"] == "EDIT"
    assert cat.get(f"{API}/documents/{doc['id']}").json()["permission"] == "COMMENT"
    assert bob.post(f"{API}/documents/{doc['id']}/versions", content=b"y").status_code == 201

    r = bob.get(f"{API}/documents/{doc['id']}/access")
    assert r.status_code == 200
    body = r.json()
    assert body["permission"] == "EDIT"
    assert [
        (v["kind"], v["share_id"], v.get("folder_id"), v.get("group_id"), v.get("group_name"))
        for v in body["via"]
    ] == [
        ("group", on_sub["id"], sub["id"], editors["id"], "Editors"),
        ("group", s["id"], team["id"], g["id"], "Design"),
        ("direct", direct["id"], None, None, None),
    ]
    about_bob = ann.get(f"{API}/documents/{doc['id']}/access", params={"user_id": bob.id})
    assert about_bob.json() == body

    # The owner's share listing names the group.
    listed = ann.get(f"{API}/folders/{team['id']}/shares").json()["items"]
    assert [(x["kind"], x["group_id"], x["group_name"]) for x in listed] == [
        ("group", g["id"], "Design")
    ]
    assert code(bob.get(f"{API}/folders/{team['id']}/shares")) == (403, "forbidden")


def test_only_a_member_shares_with_a_group_and_a_second_share_changes_the_first(
    api: Api,
) -> None:
    ann, bob, dan = (api.register(n) for n in ("ann", "bob", "dan"))
    g = new_group(ann, "Design")
    add(ann, g, bob)
    mine = upload(dan, "dans.txt", b"d")
    # A stranger to the group cannot share with it, or learn that it exists.
    body = {"document_id": mine["id"], "permission": "VIEW", "group_id": g["id"]}
    assert code(dan.post(f"{API}/shares", json=body)) == (404, "not_found")
    body["group_id"] = 10**12
    assert code(dan.post(f"{API}/shares", json=body)) == (404, "not_found")
    # A plain member may share their own items with it.
    theirs = upload(bob, "bobs.txt", b"b")
    first = share_to_group(bob, g, "VIEW", document_id=theirs["id"])
    assert ann.get(f"{API}/documents/{theirs['id']}").json()["permission"] == "VIEW"
    again = share_to_group(bob, g, "EDIT", document_id=theirs["id"])
    assert again["id"] == first["id"] and again["permission"] == "EDIT"
    assert ann.get(f"{API}/documents/{theirs['id']}").json()["permission"] == "EDIT"
    # Only the owner shares an item, with a group as with anyone.
    body = {"document_id": theirs["id"], "permission": "VIEW", "group_id": g["id"]}
    assert code(ann.post(f"{API}/shares", json=body)) == (403, "forbidden")
    # One grantee per share.
    for extra in ({"email": dan.email}, {"link": True}, {"password": "secret"}):
        body = {"document_id": theirs["id"], "permission": "VIEW", "group_id": g["id"], **extra}
        assert code(bob.post(f"{API}/shares", json=body)) == (422, "validation_error"), extra
    shares = [e for e in _audit(api, "SHARE") if e.share_id == first["id"]]
    assert [(e.details["grantee"], e.details["permission"]) for e in shares] == [
        (f"group:{g['id']}", "VIEW"),
        (f"group:{g['id']}", "EDIT"),
    ]
    assert all(e.details["group_name"] == "Design" for e in shares)


def test_removal_deletion_and_unshare_end_a_members_access_on_the_next_request(
    api: Api,
) -> None:
    ann, bob, cat = (api.register(n) for n in ("ann", "bob", "cat"))
    (team,) = tree(ann, "team")
    doc = upload(ann, "d.txt", b"x", team["id"])
    g = new_group(ann, "Design")
    add(ann, g, bob)
    add(ann, g, cat)
    s = share_to_group(ann, g, "EDIT", folder_id=team["id"])
    url = f"{API}/documents/{doc['id']}"

    # Removal by a manager: the next request is 404 (the grant was cached by the reads).
    for _ in range(3):
        assert bob.get(url).status_code == 200
    assert ann.delete(f"{API}/groups/{g['id']}/members/{bob.id}").status_code == 204
    assert code(bob.get(url)) == (404, "not_found")
    assert bob.get(f"{API}/shared-with-me").json()["items"] == []
    assert cat.get(url).status_code == 200
    # Back in the group: access again at once.
    add(ann, g, bob)
    assert bob.get(url).status_code == 200

    # Leaving, by the member themself.
    assert cat.delete(f"{API}/groups/{g['id']}/members/{cat.id}").status_code == 204
    assert code(cat.get(url)) == (404, "not_found")

    # Downgrade and unshare of the group's share.
    r = ann.patch(f"{API}/shares/{s['id']}", json={"permission": "VIEW"})
    assert r.status_code == 200 and r.json()["group_id"] == g["id"]
    assert code(bob.post(f"{url}/versions", content=b"y")) == (403, "forbidden")
    assert ann.delete(f"{API}/shares/{s['id']}").status_code == 204
    assert code(bob.get(url)) == (404, "not_found")

    # Deleting the group ends every share to it.
    s2 = share_to_group(ann, g, "VIEW", document_id=doc["id"])
    assert bob.get(url).status_code == 200
    assert ann.delete(f"{API}/groups/{g['id']}").status_code == 204
    assert code(bob.get(url)) == (404, "not_found")
    assert ann.get(f"{url}/shares").json()["items"] == []
    unshares = [e for e in _audit(api, "UNSHARE") if e.details.get("group_id") == g["id"]]
    assert [(e.share_id, e.details.get("reason")) for e in unshares] == [
        (s["id"], None),
        (s2["id"], "group_deleted"),
    ]
    assert all(e.owner_id == ann.id and e.user_id == ann.id for e in unshares)


# The routes a group member and a direct sharee at the same level must answer alike.
ROUTES: list[tuple[str, str, dict[str, Any]]] = [
    ("GET", "/documents/{d}", {}),
    ("GET", "/documents/{d}/download", {}),
    ("GET", "/documents/{d}/versions", {}),
    ("GET", "/documents/{d}/access", {}),
    ("POST", "/documents/{d}/comments", {"json": {"body": "c"}}),
    ("POST", "/documents/{d}/versions", {"content": b"v2"}),
    ("PATCH", "/documents/{d}", {"json": {"name": "renamed.txt"}}),
    ("GET", "/folders/{f}", {}),
    ("GET", "/folders/{f}/children", {}),
    ("POST", "/folders", {"json": {"name": "new{d}", "parent_id": "{f}"}}),
    ("GET", "/documents/{d}/shares", {}),
    ("POST", "/shares", {"json": {"document_id": "{d}", "permission": "VIEW", "link": True}}),
    ("DELETE", "/documents/{d}", {}),
]


def _fill(value: Any, d: int, f: int) -> Any:
    if isinstance(value, dict):
        return {k: _fill(v, d, f) for k, v in value.items()}
    if value == "{d}":
        return d
    if isinstance(value, str) and "{d}" in value:
        return value.replace("{d}", str(d))
    if value == "{f}":
        return f
    return value


def test_a_group_member_is_authorized_exactly_like_a_direct_sharee(api: Api) -> None:
    ann, stranger = api.register("ann"), api.register("stranger")
    matrix: dict[str, list[tuple[str, int, int, int]]] = {}
    for level in ("VIEW", "COMMENT", "EDIT"):
        direct, member = api.register(f"direct{level}"), api.register(f"member{level}")
        (folder,) = tree(ann, f"shared-{level}")
        share_with(ann, direct, level, folder_id=folder["id"])
        g = new_group(ann, f"group-{level}")
        add(ann, g, member)
        share_to_group(ann, g, level, folder_id=folder["id"])
        subs = {
            who.id: tree(ann, f"in-{who.id}", parent=folder["id"])[0]["id"]
            for who in (direct, member)
        }
        rows = []
        for method, path, kw in ROUTES:
            got = {}
            # The stranger goes after the direct sharee, on their item: a 404 changes nothing.
            for who in (direct, stranger, member):
                if who is not stranger:
                    f = subs[who.id]
                    d = upload(ann, f"doc{len(rows)}.txt", b"v1", f)["id"]
                url = API + path.format(d=d, f=f)
                got[who.id] = who.request(method, url, **_fill(kw, d, f)).status_code
            rows.append((f"{method} {path}", got[direct.id], got[member.id], got[stranger.id]))
        matrix[level] = rows
    wrong = [(lv, row) for lv, rows in matrix.items() for row in rows if row[1] != row[2]]
    assert not wrong, wrong
    assert all(row[3] == 404 for rows in matrix.values() for row in rows)
    statuses = {lv: {row[0]: row[2] for row in rows} for lv, rows in matrix.items()}
    assert statuses["VIEW"]["POST /documents/{d}/comments"] == 403
    assert statuses["COMMENT"]["POST /documents/{d}/comments"] == 201
    assert statuses["COMMENT"]["POST /documents/{d}/versions"] == 403
    assert statuses["EDIT"]["POST /documents/{d}/versions"] == 201
    assert statuses["EDIT"]["POST /folders"] == 201
    assert statuses["EDIT"]["DELETE /documents/{d}"] == 403


@pytest.mark.parametrize("model", [Document, Folder])
def test_readable_lets_a_member_read_what_the_single_item_checks_allow(
    api: Api, model: type[Document] | type[Folder]
) -> None:
    ann, bob = api.register("ann"), api.register("bob")
    team, sub = tree(ann, "team", "sub")
    (other,) = tree(ann, "other")
    upload(ann, "a.txt", b"a", team["id"])
    upload(ann, "b.txt", b"b", sub["id"])
    lone = upload(ann, "c.txt", b"c", other["id"])
    viewers, editors = new_group(ann, "Viewers"), new_group(ann, "Editors")
    add(ann, viewers, bob)
    add(ann, editors, bob)
    share_to_group(ann, viewers, "VIEW", folder_id=team["id"])
    share_to_group(ann, editors, "EDIT", folder_id=sub["id"])
    share_to_group(ann, editors, "COMMENT", document_id=lone["id"])
    path = "documents" if model is Document else "folders"
    with _db(api).transaction() as db:
        ids = list(db.scalars(select(model.id).where(model.owner_id == ann.id)))
    # What the single-item check answers, asked over HTTP before the direct reads below.
    levels = {}
    for i in ids:
        r = bob.get(f"{API}/{path}/{i}")
        levels[i] = Level[r.json()["permission"]] if r.status_code == 200 else Level.NONE
    seen = 0
    with _db(api).transaction() as db:
        actor = Actor(user=db.get_one(UserRow, bob.id))
        for needed in (Level.VIEW, Level.COMMENT, Level.EDIT):
            stmt = select(model.id).where(model.owner_id == ann.id, readable(actor, model, needed))
            got = set(db.scalars(stmt))
            assert got == {i for i in ids if levels[i] >= needed}, (needed, levels)
            seen += len(got)
    assert seen >= 4


def test_an_unproven_address_cannot_be_added_by_email(api: Api) -> None:
    """Whoever registers an address first is not added in its owner's place (issue 22)."""
    ann = api.register("gann")
    squatter = api.register("dave", verify=False)
    group = new_group(ann)
    members = f"{API}/groups/{group['id']}/members"
    assert code(ann.post(members, json={"email": squatter.email})) == (404, "not_found")
    ids = {m["id"] for m in ann.get(f"{API}/groups/{group['id']}").json()["members"]}
    assert ids == {ann.id}
    api.verify_email(squatter.email)  # the address is now proven by its holder
    r = ann.post(members, json={"email": squatter.email})
    assert r.status_code == 201, r.text
    ids = {m["id"] for m in ann.get(f"{API}/groups/{group['id']}").json()["members"]}
    assert ids == {ann.id, squatter.id}
