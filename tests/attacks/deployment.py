"""Real deployments for the attack tests: one `docstore serve` on SQLite (in-process cache),
or two on one PostgreSQL sharing one Redis. Clients speak from chosen loopback addresses
(127.0.0.0/8 is all loopback on Linux), so the servers see distinct client addresses
without trusting any proxy header."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fixtures.server import start_server

API = "/api/v1"
BACKENDS = ["sqlite", "postgres+redis"]


def deploy(
    request: pytest.FixtureRequest, tmp_path: Path, backend: str, env: dict[str, str]
) -> list[str]:
    """Start the servers of `backend` with `env`; their base URLs. Stopped after the test."""
    env = dict(env)
    if backend == "sqlite":
        database_url, count = str(request.getfixturevalue("sqlite_url")), 1
    else:
        database_url, count = str(request.getfixturevalue("pg_url")), 2
        env["DOCSTORE_REDIS_URL"] = str(request.getfixturevalue("redis_url"))
        # One blob store for both (each server has a data dir of its own).
        env.setdefault("DOCSTORE_STORAGE_URL", f"file://{tmp_path / 'blobs'}")
    urls = []
    for _ in range(count):
        server = start_server(tmp_path, database_url, env)
        request.addfinalizer(server.stop)
        urls.append(server.url)
    return urls


class From:
    """A client at one source address; each request goes to the next server in turn, so
    with two servers consecutive requests hit different processes."""

    def __init__(
        self, request: pytest.FixtureRequest, urls: list[str], address: str, start: int = 0
    ) -> None:
        self.clients = [
            httpx.Client(
                base_url=url,
                transport=httpx.HTTPTransport(local_address=address),
                follow_redirects=False,
                timeout=60,
            )
            for url in urls
        ]
        for client in self.clients:
            request.addfinalizer(client.close)
        start %= len(self.clients)
        self._turn = itertools.cycle(self.clients[start:] + self.clients[:start])

    def request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        """A request to the next server."""
        return next(self._turn).request(method, path, **kw)

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.request("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> httpx.Response:
        return self.request("POST", path, **kw)

    def delete(self, path: str, **kw: Any) -> httpx.Response:
        return self.request("DELETE", path, **kw)


def code(r: httpx.Response) -> tuple[int, str | None]:
    """The status and, for problem JSON, the machine-readable code."""
    is_problem = r.headers.get("content-type", "").startswith("application/problem+json")
    return r.status_code, r.json().get("code") if is_problem else None


def retry_after(r: httpx.Response) -> int:
    """A 429's Retry-After in whole seconds (it must be there)."""
    assert code(r) == (429, "rate_limited"), r.text
    return int(r.headers["Retry-After"])
