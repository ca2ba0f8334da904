"""A reply lost on the way back from Redis must not make docstore run a script twice.

The busy count of a permission generation is decremented by a script; if the client
retried after a lost reply, one ended change would count as two and caches could fill
while another writer's change is still open. A real Redis behind a loopback proxy that
drops the reply of one command shows the script runs once and the caller sees the error.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from docstore.cache import CacheError, RedisCache, split_prefix
from tests.fixtures.redis import REDIS_URL, require_redis


class ReplyDropper:
    """Forwards loopback connections to Redis; when armed, swallows the next reply and
    closes that connection (the command has run; its answer never arrives)."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.armed = threading.Event()
        self.dropped = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream, timeout=5)
            threading.Thread(target=self._pump, args=(client, server, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, True), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, replies: bool) -> None:
        try:
            while data := src.recv(65536):
                if replies and self.armed.is_set():
                    self.armed.clear()
                    self.dropped.set()
                    break
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            s.close()

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def dropper() -> Iterator[ReplyDropper]:
    require_redis()
    parts = urlsplit(split_prefix(REDIS_URL)[0])
    proxy = ReplyDropper((parts.hostname or "127.0.0.1", parts.port or 6379))
    yield proxy
    proxy.close()


def test_a_lost_reply_is_an_error_not_a_second_run(dropper: ReplyDropper, redis_url: str) -> None:
    direct = RedisCache(redis_url)
    proxied = RedisCache(redis_url.replace(f":{urlsplit(redis_url).port}/", f":{dropper.port}/"))
    gen, busy = "perm:gen", "perm:busy"
    for _ in range(3):
        direct.begin_change(gen, busy, 60)
    direct.end_change(gen, busy)  # two changes open; the script is now in Redis's cache
    proxied.ping()  # connected through the proxy
    dropper.armed.set()
    with pytest.raises(CacheError):
        proxied.end_change(gen, busy)
    assert dropper.dropped.is_set()
    # The script ran exactly once: one change is still open.
    assert direct.read_generation(gen, busy)[1] == 1
