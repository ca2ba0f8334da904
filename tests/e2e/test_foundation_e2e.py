"""End-to-end against the real `docstore serve` process: the new-user walk-through, and
concurrent uploads against a tight quota."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from sqlalchemy import update

from docstore.db import make_engine
from docstore.users.models import User
from tests.fixtures.server import ServerProcess, per_backend, shared_server

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module", params=per_backend("foundation-e2e"))
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """One real server per database for the module; each test has a user of its own and
    looks only at that user's files and quota."""
    yield from shared_server(request, tmp_path_factory)


def _register(srv: ServerProcess, name: str) -> dict[str, str]:
    r = httpx.post(
        f"{srv.url}/api/v1/auth/register",
        json={"email": f"{name}@example.com", "name": name, "password": "pass-word-1"},
    )
    assert r.status_code == 201, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


def test_new_user_walkthrough_with_curl(server: ServerProcess, tmp_path: Path) -> None:
    curl = shutil.which("curl")
    assert curl, "curl is needed for this walk-through"
    auth = _register(server, "newbie")
    api = f"{server.url}/api/v1"
    projects = httpx.post(
        f"{api}/folders", headers=auth, json={"name": "projects", "parent_id": None}
    )
    q1 = httpx.post(
        f"{api}/folders", headers=auth, json={"name": "q1", "parent_id": projects.json()["id"]}
    )
    assert q1.status_code == 201
    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(20 * 1024 * 1024))
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    out = subprocess.run(
        [
            curl,
            "-sS",
            "-f",
            "-X",
            "POST",
            "--data-binary",
            f"@{src}",
            "-H",
            f"Authorization: {auth['Authorization']}",
            "-H",
            "Content-Type: application/octet-stream",
            "-H",
            f"X-Checksum-SHA256: {digest}",
            f"{api}/files?folder_id={q1.json()['id']}&name=big.bin",
        ],
        capture_output=True,
        check=True,
        timeout=120,
    )
    doc = httpx.Response(201, content=out.stdout).json()
    dst = tmp_path / "back.bin"
    subprocess.run(
        [
            curl,
            "-sS",
            "-f",
            "-L",
            "-o",
            str(dst),
            "-H",
            f"Authorization: {auth['Authorization']}",
            f"{api}/documents/{doc['id']}/download",
        ],
        check=True,
        timeout=120,
    )
    assert dst.read_bytes() == src.read_bytes()
    me = httpx.get(f"{api}/users/me", headers=auth).json()
    assert me["used_bytes"] == 20 * 1024 * 1024
    listing = httpx.get(f"{api}/folders/{q1.json()['id']}/children", headers=auth).json()
    assert [i["name"] for i in listing["items"]] == ["big.bin"]


def test_concurrent_uploads_against_quota_for_five(server: ServerProcess) -> None:
    auth = _register(server, "racer")
    size = 64 * 1024
    me = httpx.get(f"{server.url}/api/v1/users/me", headers=auth).json()
    assert server.database_url is not None
    engine = make_engine(server.database_url)
    with engine.begin() as conn:
        conn.execute(
            update(User).where(User.id == me["id"]).values(quota_bytes=5 * size + size // 2)
        )
    engine.dispose()

    def upload(i: int) -> int:
        data = os.urandom(size)
        r = httpx.post(
            f"{server.url}/api/v1/files",
            params={"name": f"f{i}.bin"},
            headers=auth,
            content=data,
            timeout=60,
        )
        return r.status_code

    with ThreadPoolExecutor(max_workers=20) as pool:
        codes = list(pool.map(upload, range(20)))
    assert codes.count(201) == 5, codes
    assert codes.count(507) == 15, codes
    me = httpx.get(f"{server.url}/api/v1/users/me", headers=auth).json()
    assert me["used_bytes"] == 5 * size
    listing = httpx.get(f"{server.url}/api/v1/folders/root/children", headers=auth).json()
    assert len(listing["items"]) == 5
    assert sum(i["size_bytes"] for i in listing["items"]) == me["used_bytes"]
