"""Fixtures for the fault tests: loopback proxies (Redis: `redis_url`, tests/fixtures/redis.py)
and the kill -9 tests' `site`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlencode

import pytest

from tests.faults.sites import ADMIN, PART, Site
from tests.fixtures.proxy import TcpProxy
from tests.fixtures.s3 import unique_bucket


@pytest.fixture
def make_proxy() -> Iterator[Callable[[str, int], TcpProxy]]:
    """`make_proxy(host, port)`: a TcpProxy to that service, closed after the test."""
    made: list[TcpProxy] = []

    def make(host: str, port: int) -> TcpProxy:
        proxy = TcpProxy(host, port)
        made.append(proxy)
        return proxy

    yield make
    for proxy in made:
        proxy.close()


@pytest.fixture
def site(request: pytest.FixtureRequest, tmp_path: Path, pg_url: str) -> Iterator[Site]:
    """PostgreSQL and local storage, or S3 on moto with `indirect` parametrisation ("s3");
    every server the test started is stopped after it."""
    mode = getattr(request, "param", "local")
    if mode == "s3":
        moto = request.getfixturevalue("moto_endpoint")
        query = urlencode({"endpoint_url": moto, "region": "us-east-1", "create_bucket": "true"})
        storage = f"s3://{unique_bucket()}?{query}"
    else:
        storage = f"file://{tmp_path / 'blobs'}"
    env = {
        "DOCSTORE_STORAGE_URL": storage,
        "DOCSTORE_RUN_JOBS_IN_SERVER": "false",
        "DOCSTORE_UPLOAD_PART_SIZE": str(PART),
        "DOCSTORE_ADMIN_EMAIL": ADMIN[0],
        "DOCSTORE_ADMIN_PASSWORD": ADMIN[1],
    }
    s = Site(tmp_path, pg_url, env)
    try:
        yield s
    finally:
        for server in s.started:
            server.stop()
