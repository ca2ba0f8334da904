"""Twenty concurrent saves with the same base against the real server: one wins."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.fixtures.server import ServerProcess

pytestmark = pytest.mark.e2e


def test_twenty_saves_same_base_exactly_one_wins(server: ServerProcess) -> None:
    api = f"{server.url}/api/v1"
    r = httpx.post(
        f"{api}/auth/register",
        json={"email": "w@example.com", "name": "W", "password": "pass-word-1"},
    )
    auth = {"Authorization": f"Bearer {r.json()['token']}"}
    doc = httpx.post(
        f"{api}/files", params={"name": "doc.txt"}, headers=auth, content=b"base\n"
    ).json()
    base = doc["current_version"]["id"]

    def save(i: int) -> httpx.Response:
        return httpx.post(
            f"{api}/documents/{doc['id']}/versions",
            params={"base_version_id": base},
            headers=auth,
            content=f"edit {i}\n".encode(),
            timeout=60,
        )

    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(save, range(20)))
    codes = [r.status_code for r in results]
    assert codes.count(201) == 1, codes
    assert codes.count(409) == 19, codes
    winner = next(r for r in results if r.status_code == 201).json()["version"]["id"]
    assert {r.json()["current_version_id"] for r in results if r.status_code == 409} == {winner}

    # Unconditional saves racing each other: all succeed with contiguous numbers.
    def blind(i: int) -> int:
        return httpx.post(
            f"{api}/documents/{doc['id']}/versions",
            headers=auth,
            content=f"blind {i}\n".encode(),
            timeout=60,
        ).status_code

    with ThreadPoolExecutor(max_workers=10) as pool:
        assert set(pool.map(blind, range(10))) == {201}
    versions = httpx.get(f"{api}/documents/{doc['id']}/versions", headers=auth).json()["items"]
    assert [v["version_number"] for v in versions] == list(range(12, 0, -1))
    assert [v["is_current"] for v in versions].count(True) == 1
    current = httpx.get(f"{api}/documents/{doc['id']}", headers=auth).json()
    assert current["current_version"]["id"] == versions[0]["id"]
    assert httpx.get(f"{api}/users/me", headers=auth).json()["used_bytes"] == sum(
        v["size_bytes"] for v in versions
    )
