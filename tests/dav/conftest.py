"""A real `docstore serve` for the WebDAV client tests (litmus, rclone): once on SQLite with
local storage, once on PostgreSQL with Redis and S3 (moto)."""

from __future__ import annotations

import base64
import itertools
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest

from tests.fixtures.databases import PG_URL_BASE, _pg_admin
from tests.fixtures.redis import REDIS_URL, require_redis
from tests.fixtures.s3 import unique_bucket
from tests.fixtures.server import ServerProcess, start_server

_counter = itertools.count()
PASSWORD = "correct horse battery"


@dataclass
class DavAccount:
    """A user of the server: email, account password and an API token (app password)."""

    email: str
    token: str
    user_id: int

    def basic(self, password: str | None = None) -> dict[str, str]:
        """Basic credentials with the token (or the given password)."""
        raw = f"{self.email}:{password or self.token}".encode()
        return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


@dataclass
class DavServer:
    """A running server and a way to make accounts on it."""

    proc: ServerProcess
    backend: str  # "sqlite-local" or "postgres-redis-s3"

    @property
    def url(self) -> str:
        """The server's base URL."""
        return self.proc.url

    def account(self) -> DavAccount:
        """A new account (open sign-up)."""
        email = f"dav-{uuid.uuid4().hex[:10]}@example.com"
        r = httpx.post(
            f"{self.url}/api/v1/auth/register",
            json={"email": email, "name": "Dav", "password": PASSWORD},
            timeout=30,
        )
        assert r.status_code == 201, r.text
        body = r.json()
        token = body["token"]
        # Command-line clients (litmus, rclone) take the password as an argument: one that
        # starts with "-" would read as an option, so sign in again for another (bounded).
        for _ in range(20):
            if not token.startswith("-"):
                break
            r = httpx.post(
                f"{self.url}/api/v1/auth/login",
                json={"email": email, "password": PASSWORD},
                timeout=30,
            )
            assert r.status_code == 200, r.text
            token = r.json()["token"]
        assert not token.startswith("-")
        return DavAccount(email, token, body["user"]["id"])


@pytest.fixture(
    scope="session",
    # One xdist group per backend: the client tests (litmus, rclone, the mount) share one
    # server per backend.
    params=[
        pytest.param(b, marks=pytest.mark.xdist_group(f"dav-clients-{b}"))
        for b in ("sqlite-local", "postgres-redis-s3")
    ],
)
def dav_server(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    worker_id: str,
) -> Iterator[DavServer]:
    """One server for the WebDAV client tests, on each backend set."""
    tmp = tmp_path_factory.mktemp("dav")
    env: dict[str, str] = {}
    cleanup: list[Callable[[], None]] = []
    if request.param == "sqlite-local":
        template: Path = request.getfixturevalue("sqlite_template")
        shutil.copyfile(template, tmp / "docstore.db")
        database_url = f"sqlite:///{tmp / 'docstore.db'}"
    else:
        pg_template: str = request.getfixturevalue("pg_template")
        moto: str = request.getfixturevalue("moto_endpoint")
        name = f"docstore_dav_{worker_id}_{os.getpid()}_{next(_counter)}"
        with _pg_admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"')
        database_url = PG_URL_BASE + name
        require_redis()
        prefix = f"docstore-test:{uuid.uuid4().hex[:12]}:"
        sep = "&" if "?" in REDIS_URL else "?"
        query = urlencode({"endpoint_url": moto, "region": "us-east-1", "create_bucket": "true"})
        env["DOCSTORE_REDIS_URL"] = f"{REDIS_URL}{sep}prefix={prefix}"
        env["DOCSTORE_STORAGE_URL"] = f"s3://{unique_bucket()}?{query}"

        def drop() -> None:
            with _pg_admin() as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

        def forget() -> None:
            client = require_redis()
            keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
            if keys:
                client.delete(*keys)
            client.close()

        cleanup += [drop, forget]
    srv = start_server(tmp, database_url, env)
    try:
        yield DavServer(srv, request.param)
    finally:
        srv.stop()
        for fn in cleanup:
            fn()
