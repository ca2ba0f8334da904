"""Fixtures for the fault tests: loopback proxies (Redis: `redis_url`, tests/fixtures/redis.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.fixtures.proxy import TcpProxy


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
