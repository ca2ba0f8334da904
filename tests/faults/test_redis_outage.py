"""Redis stopped or flushed while the real server decides permissions from its cache.

The server's Redis is a loopback proxy (so "stopped" never touches the shared Redis) and
its keys live under a prefix of their own (so "flushed" deletes only this server's keys).
Revokes and downgrades go on while the cache breaks; after every step each permission the
server answers must match the share rows, and nothing may fail with a 5xx other than the
documented 503 `cache_unavailable` for a revoke that could not be made effective. A revoke
the server accepted holds at once, also once Redis is back and answers are read from it.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Iterator

import pytest
import redis

from docstore.cache import split_prefix
from docstore.sharing.permissions import Level
from docstore.sharing.runtime import BREAKER_SECONDS
from tests.faults.helpers import API, Client, host_port, problem
from tests.fixtures.databases import lasting_database
from tests.fixtures.proxy import TcpProxy
from tests.fixtures.redis import REDIS_URL, require_redis
from tests.fixtures.server import ServerProcess, start_server

# One worker runs the module (scripts/test uses --dist loadgroup): one server for all of it.
pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.xdist_group("redis-outage")]

CYCLES = 12
FLAPS = 4  # cycles with Redis down for each downgrade and revoke


@pytest.fixture(scope="module")
def _shared_on_redis(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ServerProcess, TcpProxy, str]]:
    """One server for the module (the tests want the same settings): its Redis behind a
    proxy, its keys under a prefix of its own; the URL of that Redis, prefix included."""
    client = require_redis()
    prefix = f"docstore-test:{uuid.uuid4().hex[:12]}:"
    redis_url = f"{REDIS_URL}{'&' if '?' in REDIS_URL else '?'}prefix={prefix}"
    url, _ = split_prefix(redis_url)
    proxy = TcpProxy(*host_port(url))
    db = url.rsplit("/", 1)[1] or "0"
    env = {
        "DOCSTORE_REDIS_URL": f"redis://{proxy.address}/{db}?prefix={prefix}",
        "DOCSTORE_RUN_JOBS_IN_SERVER": "false",
    }
    tmp = tmp_path_factory.mktemp("redis-outage")
    try:
        with lasting_database(request, "postgres", tmp) as pg_url:
            server = start_server(tmp, pg_url, env)
            try:
                yield server, proxy, redis_url
            finally:
                server.stop()
    finally:
        proxy.close()
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()


@pytest.fixture
def server_on_redis(
    _shared_on_redis: tuple[ServerProcess, TcpProxy, str],
) -> tuple[ServerProcess, TcpProxy]:
    """The module's server, with its Redis reachable again and its keys gone, as for a
    server of the test's own (the flush test counts the keys the server writes). Each test
    registers its own users and shares its own document."""
    server, proxy, redis_url = _shared_on_redis
    proxy.resume()
    url, prefix = split_prefix(redis_url)
    client = redis.Redis.from_url(url, socket_timeout=5)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()
    return server, proxy


@pytest.fixture
def redis_url(_shared_on_redis: tuple[ServerProcess, TcpProxy, str]) -> str:
    """The shared server's Redis URL, prefix included (overrides tests/fixtures/redis.py)."""
    return _shared_on_redis[2]


class Sharing:
    """Ann's document shared with Bob, and what Bob may do with it (the reference model)."""

    def __init__(self, ann: Client, bob: Client, bob_email: str) -> None:
        self.ann, self.bob, self.bob_email = ann, bob, bob_email
        r = ann.put_file("shared.txt", b"hello")
        assert r.status_code == 201, r.text
        self.doc = r.json()["id"]
        self.level: str | None = None
        self.share_id: int | None = None

    def grant(self, level: str) -> None:
        body = {"document_id": self.doc, "email": self.bob_email, "permission": level}
        r = self.ann.post(f"{API}/shares", json=body)
        assert r.status_code == 201, r.text
        self.share_id, self.level = r.json()["id"], level

    def change(self, level: str | None) -> bool:
        """Downgrade (a level) or revoke (None); False when the server said 503 (unchanged)."""
        assert self.share_id is not None
        url = f"{API}/shares/{self.share_id}"
        if level is None:
            r = self.ann.request("DELETE", url)
            ok = 204
        else:
            r = self.ann.request("PATCH", url, json={"permission": level})
            ok = 200
        if problem(r) == (503, "cache_unavailable"):
            return False
        assert r.status_code == ok, r.text
        self.level = level
        if level is None:
            self.share_id = None
        return True

    def check(self) -> None:
        """Bob's reads and writes answer exactly what the model says, twice (cache warm)."""
        for _ in range(2):
            r = self.bob.get(f"{API}/documents/{self.doc}")
            if self.level is None:
                assert problem(r) == (404, "not_found"), r.text
                continue
            assert r.status_code == 200, r.text
            assert r.json()["permission"] == self.level
        w = self.bob.post(f"{API}/documents/{self.doc}/versions", content=os.urandom(8))
        expected = {None: 404, "VIEW": 403, "EDIT": 201}[self.level]
        assert w.status_code == expected, w.text


def _users(server: ServerProcess) -> tuple[Client, Client, str]:
    ann = Client.register(server.url, "ann")
    bob = Client.register(server.url, "bob")
    r = bob.get(f"{API}/users/me")
    return ann, bob, r.json()["email"]


def _cycle(model: Sharing, attempts: int = 20) -> None:
    """Grant EDIT, use it, downgrade to VIEW, revoke; each change retried while refused."""
    model.grant("EDIT")
    model.check()
    for level in ("VIEW", None):
        for _ in range(attempts):
            if model.change(level):
                break
            model.check()  # refused: nothing changed, and the old grant is still served
        else:
            pytest.fail(f"the change to {level} was refused {attempts} times")
        model.check()


def test_redis_stopped_mid_run_keeps_permissions_exact(
    server_on_redis: tuple[ServerProcess, TcpProxy],
) -> None:
    server, proxy = server_on_redis
    ann, bob, email = _users(server)
    model = Sharing(ann, bob, email)
    _cycle(model)  # Redis up: warm caches

    # Redis goes away with grants cached in it; a revoke made just before must hold.
    model.grant("EDIT")
    model.check()
    assert model.change(None)
    proxy.refuse()
    model.check()
    model.grant("EDIT")  # widening works without the cache
    model.check()
    # Narrowing cannot be announced to other processes' caches: refused, nothing changed.
    assert not model.change("VIEW")
    model.check()
    # The service keeps serving everything else.
    assert ann.put_file("during.txt", b"x").status_code == 201
    assert ann.get(f"{API}/folders/root/children").status_code == 200

    proxy.resume()
    for _ in range(20):  # the breaker retries Redis after 2 s; the change is retried
        if model.change("VIEW"):
            break
        model.check()
    assert model.level == "VIEW"
    model.check()
    assert model.change(None)
    model.check()


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _served_from_cache(model: Sharing, cache: redis.Redis, prefix: str) -> bool:
    """Whether Redis holds Bob's grant on the document as the model has it, under the
    owner's current generation with no change in flight: the server stored it, so it reads
    grants from Redis again (its breaker is closed) and its next answer comes from there."""
    gen = cache.get(f"{prefix}perm:gen:{model.ann.user_id}")
    if gen is None or cache.get(f"{prefix}perm:busy:{model.ann.user_id}") is not None:
        return False
    level = int(Level[model.level]) if model.level else 0
    match = f"{prefix}perm:e:{model.bob.user_id}:{model.doc}:*"
    entries = [cache.get(key) for key in cache.scan_iter(match=match, count=1000)]
    want = [_text(gen), str(level)]
    return any(e is not None and _text(e).split("|")[:2] == want for e in entries)


def _check_through_cache(model: Sharing, cache: redis.Redis, prefix: str) -> None:
    """Bob's checks until the server answers him from Redis again, then once more.

    After a Redis failure the server asks the database for BREAKER_SECONDS. A grant left
    stale in Redis (a change that did not invalidate it) is served once that ends: the
    checks in this loop fail on it, and the loop never ends on it (its level is the old one).
    """
    deadline = time.monotonic() + BREAKER_SECONDS + 20
    while not _served_from_cache(model, cache, prefix):
        assert time.monotonic() < deadline, "the server never cached Bob's grant again"
        model.check()
        time.sleep(0.1)
    model.check()


def test_redis_flapping_while_revoking_keeps_permissions_exact(
    server_on_redis: tuple[ServerProcess, TcpProxy], redis_url: str
) -> None:
    """Redis refuses connections inside each cycle, with Bob's grant cached in it, just
    before the downgrade and the revoke are sent. Each change is refused (503, nothing
    changed: the old grant is still served) or holds at once; a refused one is retried once
    Redis is back. Either way, once the server answers from Redis again, Bob gets exactly
    what the share rows say: a grant the change failed to invalidate would be served then."""
    server, proxy = server_on_redis
    url, prefix = split_prefix(redis_url)
    ann, bob, email = _users(server)
    model = Sharing(ann, bob, email)
    cache = redis.Redis.from_url(url, socket_timeout=5)
    outcomes = {"refused": 0, "accepted": 0}
    for _ in range(FLAPS):
        model.grant("EDIT")
        _check_through_cache(model, cache, prefix)  # Bob's EDIT is in Redis
        for level in ("VIEW", None):
            proxy.refuse()
            accepted = model.change(level)  # sent while Redis is down
            outcomes["accepted" if accepted else "refused"] += 1
            model.check()
            proxy.resume()
            if not accepted:
                assert model.change(level)  # Redis is back: the retry holds
            _check_through_cache(model, cache, prefix)
    print(outcomes)
    cache.close()


def test_redis_flushed_mid_run_keeps_permissions_exact(
    server_on_redis: tuple[ServerProcess, TcpProxy], redis_url: str
) -> None:
    server, _ = server_on_redis
    url, prefix = split_prefix(redis_url)
    ann, bob, email = _users(server)
    model = Sharing(ann, bob, email)
    client = redis.Redis.from_url(url, socket_timeout=5)

    def flush() -> int:
        """FLUSHDB, but only of this server's keys (the Redis is shared)."""
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        return int(client.unlink(*keys)) if keys else 0

    # Warm grants flushed away after a revoke: the revoke holds.
    model.grant("EDIT")
    model.check()
    assert flush() > 0
    model.check()
    assert model.change(None)
    model.check()
    flush()
    model.check()

    # Flushes racing every change and every check.
    stop = threading.Event()
    flushes = 0

    def flusher() -> None:
        nonlocal flushes
        while not stop.is_set() and flushes < 100_000:
            flush()
            flushes += 1

    thread = threading.Thread(target=flusher, daemon=True)
    thread.start()
    try:
        for _ in range(CYCLES):
            _cycle(model)
    finally:
        stop.set()
        thread.join(10)
    assert flushes > 0
    model.check()
    client.close()
