"""Revocation across server processes: two `docstore serve` on one PostgreSQL database; an
app password made with `docstore token create` and a signed-in session, each revoked
through one process, stop working on the other at the next request.

No process caches tokens (every request reads its token row), so no Redis is involved: the
database is the one place a revocation has to land.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.cli.conftest import Cli
from tests.fixtures.server import ServerProcess, start_server

pytestmark = pytest.mark.e2e
PASSWORD = "correct horse battery"
ENV = {"DOCSTORE_RUN_JOBS_IN_SERVER": "false"}


@pytest.fixture
def two_servers(tmp_path: Path, pg_url: str) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    """Two server processes on the same PostgreSQL database (started one after the other:
    the first migrates)."""
    first = start_server(tmp_path / "a", pg_url, ENV)
    try:
        second = start_server(tmp_path / "b", pg_url, ENV)
    except BaseException:
        first.stop()
        raise
    yield first, second
    second.stop()
    first.stop()


def _me(server: ServerProcess, token: str) -> int:
    r = httpx.get(
        f"{server.url}/api/v1/users/me", headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    return r.status_code


def test_revocation_holds_on_the_next_request_in_every_process(
    two_servers: tuple[ServerProcess, ServerProcess], tmp_path: Path
) -> None:
    a, b = two_servers
    body = {"email": "ann@example.com", "name": "Ann", "password": PASSWORD}
    r = httpx.post(f"{a.url}/api/v1/auth/register", json=body, timeout=30)
    assert r.status_code == 201, r.text
    session = r.json()["token"]
    cli = Cli(a, tmp_path / "home")
    as_ann = {"DOCSTORE_URL": a.url, "DOCSTORE_TOKEN": session}

    made = json.loads(cli.ok("token", "create", "--name", "laptop", "--json", env=as_ann).stdout)
    app_password = made["token"]
    assert _me(b, app_password) == 200  # made on one process, good on the other
    listed = {s["id"]: s for s in json.loads(cli.ok("token", "ls", "--json", env=as_ann).stdout)}
    assert listed[made["id"]]["kind"] == "app_password"
    assert listed[made["id"]]["last_used_at"] is not None  # the use on the other process
    table = cli.ok("token", "ls", env=as_ann).stdout
    assert "laptop" in table and "app password" in table

    cli.ok("token", "revoke", str(made["id"]), env=as_ann)
    assert _me(b, app_password) == 401
    assert _me(a, app_password) == 401
    again = cli.run("token", "revoke", str(made["id"]), env=as_ann)
    assert again.returncode == 3 and "Traceback" not in again.stderr

    # A session signed in through the second process, ended through the first.
    login = {"email": "ann@example.com", "password": PASSWORD}
    phone = httpx.post(f"{b.url}/api/v1/auth/login", json=login, timeout=30).json()["token"]
    assert _me(b, phone) == 200
    sessions = httpx.get(
        f"{a.url}/api/v1/users/me/sessions",
        headers={"Authorization": f"Bearer {session}"},
        timeout=30,
    ).json()["items"]
    (phone_row,) = [s for s in sessions if not s["current"]]
    r = httpx.delete(
        f"{a.url}/api/v1/users/me/sessions/{phone_row['id']}",
        headers={"Authorization": f"Bearer {session}"},
        timeout=30,
    )
    assert r.status_code == 204
    assert _me(b, phone) == 401
    assert _me(b, session) == 200  # the one that revoked goes on
