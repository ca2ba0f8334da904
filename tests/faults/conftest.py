"""Fixtures for the fault tests: loopback proxies and a Redis key prefix of our own."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator

import pytest
import redis

from tests.fixtures.proxy import TcpProxy
from tests.fixtures.services import missing

REDIS_URL = os.environ.get("DOCSTORE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


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
def redis_prefix() -> Iterator[tuple[str, str]]:
    """(Redis URL without prefix, a key prefix no other test uses); its keys go afterwards."""
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.RedisError as exc:
        missing("Redis", str(exc))
    prefix = f"docstore-faults:{uuid.uuid4().hex[:12]}:"
    yield REDIS_URL, prefix
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()
