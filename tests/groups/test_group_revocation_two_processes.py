"""Two real server processes on one PostgreSQL and one Redis: a member reads through
process B with B's permission cache warm, a manager removes them (or deletes the group)
through process A, and the member's very next request on B is refused; requests in flight
during the removal that started after it returned are all refused too."""

from __future__ import annotations

import httpx
import pytest
import redis

from docstore.cache import split_prefix
from tests.fixtures.app import User
from tests.fixtures.server import ServerProcess
from tests.groups.helpers import add, new_group, share_to_group
from tests.sharing.helpers import API, code, remote_api, statuses_around, tree

pytestmark = pytest.mark.e2e


def _cached_entries(redis_url: str, user_id: int) -> int:
    url, prefix = split_prefix(redis_url)
    client = redis.Redis.from_url(url)
    try:
        return len(list(client.scan_iter(match=f"{prefix}perm:e:{user_id}:*", count=1000)))
    finally:
        client.close()


def _ok(r: httpx.Response, status: int) -> None:
    assert r.status_code == status, r.text


def test_removing_a_member_or_deleting_the_group_through_one_process_binds_the_other(
    two_servers: list[ServerProcess], redis_url: str
) -> None:
    a, b = (remote_api(s.url) for s in two_servers)
    ann = a.register("ann")  # owner and manager, talking to process A
    bob_a = a.register("bob")
    bob = User(b, bob_a.token, bob_a.info)  # the member, talking to process B
    team, sub = tree(ann, "team", "sub")
    r = ann.post(f"{API}/folders", json={"name": "inner", "parent_id": sub["id"]})
    assert r.status_code == 201
    docs = [ann.upload(f"d{i}.txt", b"x", sub["id"]).json() for i in range(2)]
    g = new_group(ann, "Design")
    add(ann, g, bob_a)
    share_to_group(ann, g, "EDIT", folder_id=team["id"])
    url = f"{API}/documents/{docs[0]['id']}"

    # Removal by the manager on A: bob's next request on B is 404.
    for _ in range(3):
        r = bob.get(url)
        assert r.status_code == 200 and r.json()["permission"] == "EDIT"
        # A check through `level_for` and the cache (GET /documents/{id} reads the grant in
        # its own statement on PostgreSQL: documents.service.get_in_one_statement).
        assert bob.get(f"{url}/versions").status_code == 200
    assert _cached_entries(redis_url, bob.id) > 0  # process B's grant is cached in Redis
    assert ann.delete(f"{API}/groups/{g['id']}/members/{bob.id}").status_code == 204
    assert code(bob.get(url)) == (404, "not_found")
    assert code(bob.get(f"{url}/versions")) == (404, "not_found")
    assert code(bob.get(f"{API}/folders/{sub['id']}")) == (404, "not_found")

    # Added back on A: access on B again, at once.
    add(ann, g, bob_a)
    assert bob.get(url).status_code == 200

    # Requests in flight on B while A removes bob: none started after the removal returned
    # is granted.
    other = f"{API}/documents/{docs[1]['id']}"
    before, after = statuses_around(
        lambda: bob.get(other).status_code,
        lambda: _ok(ann.delete(f"{API}/groups/{g['id']}/members/{bob.id}"), 204),
    )
    assert 200 in before and after, "the reader must have run on both sides of the removal"
    assert set(after) == {404}

    # Deleting the group on A ends its shares for B's next request.
    add(ann, g, bob_a)
    for _ in range(2):
        assert bob.get(url).status_code == 200
    assert ann.delete(f"{API}/groups/{g['id']}").status_code == 204
    assert code(bob.get(url)) == (404, "not_found")
    assert bob.get(f"{API}/shared-with-me").json()["items"] == []
