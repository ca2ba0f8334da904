"""End to end against the real `docstore serve` process (SQLite and PostgreSQL): folder
shares over a deep tree, moves, downgrades, revokes, pending email shares and links."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime

import pytest

from tests.fixtures.server import ServerProcess, per_backend, shared_server
from tests.sharing.helpers import API, code, in_seconds, link, remote_api, share_with, tree, upload

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module", params=per_backend("sharing-e2e"))
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """One real server per database for the module (the tests' users are distinct)."""
    yield from shared_server(request, tmp_path_factory)


def test_folder_share_move_downgrade_revoke_and_pending_email(server: ServerProcess) -> None:
    api = remote_api(server.url)
    ann, bob = api.register("ann"), api.register("bob")
    team, _a, _b, c = tree(ann, "team", "a", "b", "c")
    doc = upload(ann, "doc.txt", b"v1", c["id"])
    s = share_with(ann, bob, "EDIT", folder_id=team["id"])

    for _ in range(2):  # the second read is a warm cache hit
        assert bob.get(f"{API}/documents/{doc['id']}").status_code == 200
    later = upload(ann, "later.txt", b"new", c["id"])
    assert bob.get(f"{API}/documents/{later['id']}").json()["permission"] == "EDIT"
    access = bob.get(f"{API}/documents/{doc['id']}/access").json()
    assert access["permission"] == "EDIT"
    assert access["via"] == [
        {"kind": "folder", "share_id": s["id"], "folder_id": team["id"], "permission": "EDIT"}
    ]

    # Downgrade EDIT -> VIEW: B's next save is refused.
    r = bob.post(f"{API}/documents/{doc['id']}/versions", content=b"v2")
    assert r.status_code == 201
    assert ann.patch(f"{API}/shares/{s['id']}", json={"permission": "VIEW"}).status_code == 200
    r = bob.post(f"{API}/documents/{doc['id']}/versions", content=b"v3")
    assert code(r) == (403, "forbidden")

    # A moves the document out of /team: B's next request cannot see it.
    r = ann.patch(f"{API}/documents/{doc['id']}", json={"parent_folder_id": None})
    assert r.status_code == 200
    assert code(bob.get(f"{API}/documents/{doc['id']}")) == (404, "not_found")
    assert bob.get(f"{API}/documents/{later['id']}").status_code == 200

    # Revoke: B's next request gets 404.
    assert ann.delete(f"{API}/shares/{s['id']}").status_code == 204
    assert code(bob.get(f"{API}/documents/{later['id']}")) == (404, "not_found")

    # A share to an email with no account waits through registration, and applies once
    # the address is verified by the mailed link.
    share_with(ann, "carol@example.com", "COMMENT", document_id=later["id"])
    carol = api.register("carol", verify=False)
    assert code(carol.get(f"{API}/documents/{later['id']}")) == (404, "not_found")
    assert carol.get(f"{API}/shared-with-me").json()["items"] == []
    api.verify_email(carol.email)
    r = carol.get(f"{API}/documents/{later['id']}")
    assert r.status_code == 200 and r.json()["permission"] == "COMMENT"
    r = carol.post(f"{API}/documents/{later['id']}/comments", json={"body": "hi"})
    assert r.status_code == 201


def test_links_expire_to_the_second_and_limit_password_guesses(server: ServerProcess) -> None:
    api = remote_api(server.url)
    anon = api.client
    ann = api.register("lina")  # not "ann": the other test's ann is on this server too
    doc = upload(ann, "doc.txt", b"linked", None)

    soon = link(ann, "VIEW", document_id=doc["id"], expires_at=in_seconds(6))
    assert anon.get(f"{API}/links/{soon['token']}").status_code == 200
    r = anon.get(f"{API}/links/{soon['token']}/download")
    assert r.status_code == 307 and anon.get(r.headers["location"]).content == b"linked"
    wait = datetime.fromisoformat(soon["expires_at"]).timestamp() - time.time() + 0.1
    time.sleep(max(wait, 0))
    assert code(anon.get(f"{API}/links/{soon['token']}")) == (410, "link_expired")
    assert code(anon.get(f"{API}/links/{soon['token']}/download")) == (410, "link_expired")

    guarded = link(ann, "EDIT", document_id=doc["id"], password="let me in")
    url = f"{API}/links/{guarded['token']}"
    assert code(anon.get(url)) == (403, "link_password_required")
    for _ in range(10):
        r = anon.get(url, headers={"X-Link-Password": "guess"})
        assert code(r) == (403, "link_password_invalid")
    assert code(anon.get(url, headers={"X-Link-Password": "guess"})) == (429, "rate_limited")
    assert code(anon.get(url, headers={"X-Link-Password": "let me in"})) == (429, "rate_limited")
    r = anon.post(f"{url}/versions", headers={"X-Link-Password": "let me in"}, content=b"x")
    assert code(r) == (429, "rate_limited")
