"""More concurrent requests than worker-thread tokens, on SQLite, with clients that hang up
mid-request: the server keeps answering (it used to stall until SQLite's 30 s busy timeout,
the request holding the write lock waiting for a thread that queued requests held)."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.fixtures.mail import verify_over_http
from tests.fixtures.server import ServerProcess, start_server

API = "/api/v1"
CLIENTS = 64  # AnyIO's default pool has 40 tokens


def _register(url: str, email: str) -> dict[str, str]:
    r = httpx.post(
        f"{url}{API}/auth/register",
        json={"email": email, "name": email, "password": "correct horse"},
        trust_env=False,
    )
    assert r.status_code == 201, r.text
    verify_over_http(url, email)  # shares to the address apply once it is proven
    return {"Authorization": f"Bearer {r.json()['token']}"}


def _pile_up(url: str, headers: dict[str, str], timeout: float) -> list[int | str]:
    """CLIENTS requests at once, each on its own connection; status or the error's name."""

    def one(_: int) -> int | str:
        try:
            with httpx.Client(base_url=url, headers=headers, timeout=timeout, trust_env=False) as c:
                return c.get(f"{API}/documents/{os.environ['PILEUP_DOC']}").status_code
        except httpx.HTTPError as exc:
            return type(exc).__name__

    with ThreadPoolExecutor(CLIENTS) as pool:
        return list(pool.map(one, range(CLIENTS)))


@pytest.fixture
def sqlite_server(tmp_path: Path, sqlite_url: str) -> ServerProcess:
    srv = start_server(tmp_path, sqlite_url, {"DOCSTORE_RUN_JOBS_IN_SERVER": "false"})
    yield srv  # type: ignore[misc]
    srv.stop()


def test_requests_piled_past_the_thread_pool_still_complete(
    sqlite_server: ServerProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = sqlite_server.url
    owner, reader = _register(url, "owner@example.com"), _register(url, "reader@example.com")
    folder = httpx.post(f"{url}{API}/folders", json={"name": "team"}, headers=owner).json()
    doc = httpx.post(
        f"{url}{API}/files",
        params={"name": "d.txt", "folder_id": folder["id"]},
        content=b"shared",
        headers=owner,
    ).json()
    share = httpx.post(
        f"{url}{API}/shares",
        json={"folder_id": folder["id"], "email": "reader@example.com", "permission": "VIEW"},
        headers=owner,
    )
    assert share.status_code == 201, share.text
    monkeypatch.setenv("PILEUP_DOC", str(doc["id"]))
    # Every read by the sharee writes a VIEW entry: each takes SQLite's write lock.
    _pile_up(url, reader, timeout=0.05)  # clients that hang up with requests in flight
    answers = _pile_up(url, reader, timeout=60)
    assert answers == [200] * CLIENTS
