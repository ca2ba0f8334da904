"""Two real server processes on one PostgreSQL and one Redis: a revoke, downgrade or move
made through one process is in force for the very next request through the other, even
with that process's permission cache warm and requests in flight during the change."""

from __future__ import annotations

import httpx
import pytest
import redis

from docstore.cache import split_prefix
from tests.fixtures.app import User
from tests.fixtures.server import ServerProcess
from tests.sharing.helpers import (
    API,
    code,
    remote_api,
    share_with,
    statuses_around,
    tree,
    upload,
)

pytestmark = pytest.mark.e2e


def _cached_entries(redis_url: str) -> int:
    url, prefix = split_prefix(redis_url)
    client = redis.Redis.from_url(url)
    try:
        return len(list(client.scan_iter(match=f"{prefix}perm:e:*", count=1000)))
    finally:
        client.close()


def test_revoke_downgrade_and_move_through_one_process_bind_the_other(
    two_servers: list[ServerProcess], redis_url: str
) -> None:
    p1, p2 = (remote_api(s.url) for s in two_servers)
    ann = p1.register("ann")
    bob_p1 = p1.register("bob")
    bob = User(p2, bob_p1.token, bob_p1.info)  # the same account, talking to process 2
    team, sub = tree(ann, "team", "sub")
    doc = upload(ann, "doc.txt", b"v1", sub["id"])

    # Revoke of a direct share.
    direct = share_with(ann, bob_p1, "EDIT", document_id=doc["id"])
    for _ in range(3):
        assert bob.get(f"{API}/documents/{doc['id']}").status_code == 200
        # A check through `level_for` and the cache (GET /documents/{id} reads the grant in
        # its own statement on PostgreSQL: documents.service.get_in_one_statement).
        assert bob.get(f"{API}/documents/{doc['id']}/versions").status_code == 200
    assert _cached_entries(redis_url) > 0  # process 2's cache is warm
    assert ann.delete(f"{API}/shares/{direct['id']}").status_code == 204
    assert code(bob.get(f"{API}/documents/{doc['id']}")) == (404, "not_found")
    assert code(bob.get(f"{API}/documents/{doc['id']}/versions")) == (404, "not_found")

    # Downgrade of a folder share.
    folder_share = share_with(ann, bob_p1, "EDIT", folder_id=team["id"])
    assert bob.post(f"{API}/documents/{doc['id']}/versions", content=b"v2").status_code == 201
    assert bob.get(f"{API}/documents/{doc['id']}").json()["permission"] == "EDIT"
    r = ann.patch(f"{API}/shares/{folder_share['id']}", json={"permission": "VIEW"})
    assert r.status_code == 200
    r = bob.post(f"{API}/documents/{doc['id']}/versions", content=b"v3")
    assert code(r) == (403, "forbidden")

    # Moving the folder out of the shared one: its subtree goes out of reach.
    for _ in range(3):
        assert bob.get(f"{API}/documents/{doc['id']}").status_code == 200
        assert bob.get(f"{API}/documents/{doc['id']}/versions").status_code == 200
        assert bob.get(f"{API}/folders/{sub['id']}").status_code == 200
    r = ann.patch(f"{API}/folders/{sub['id']}", json={"parent_id": None})
    assert r.status_code == 200
    assert code(bob.get(f"{API}/documents/{doc['id']}")) == (404, "not_found")
    assert code(bob.get(f"{API}/documents/{doc['id']}/versions")) == (404, "not_found")
    assert code(bob.get(f"{API}/folders/{sub['id']}")) == (404, "not_found")
    assert bob.get(f"{API}/folders/{team['id']}").status_code == 200

    # Requests in flight during a revoke: none that started after it returned is granted.
    other = upload(ann, "other.txt", b"o", team["id"])
    before, after = statuses_around(
        lambda: bob.get(f"{API}/documents/{other['id']}").status_code,
        lambda: _ok(ann.delete(f"{API}/shares/{folder_share['id']}"), 204),
    )
    assert 200 in before and after, "the reader must have run on both sides of the revoke"
    assert set(after) == {404}


def _ok(r: httpx.Response, status: int) -> None:
    assert r.status_code == status, r.text
