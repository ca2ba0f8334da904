"""A small cache interface: Redis when configured, else an in-process TTL map.

Besides plain keys with a TTL it offers *generations*: a random token per scope (e.g. per
owner) folded into derived cache entries, plus a count of changes in flight. A writer calls
`begin_change` before its transaction commits and `end_change` after; a reader trusts or
writes an entry only while no change is in flight and the entry carries the current token.
This invalidates any number of entries without enumerating them (see sharing/grant_cache.py).
"""

from __future__ import annotations

import secrets
import threading
import time
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

# Generation tokens outlive every entry that carries them; losing one only costs misses.
GENERATION_TTL_SECONDS = 7 * 24 * 3600


class CacheError(redis.RedisError):
    """The cache did not answer (Redis down or too slow); callers fall back to the DB.

    A RedisError, so code that catches redis.RedisError around cache calls still works.
    """


class Cache(Protocol):
    """What docstore asks of a cache; every call may raise CacheError."""

    kind: str

    def get(self, key: str) -> str | None:
        """The value, or None when absent or expired."""
        ...

    def get_many(self, keys: list[str]) -> list[str | None]:
        """The values of several keys in one round trip (None where absent)."""
        ...

    def set(self, key: str, value: str, ttl_seconds: int) -> None:
        """Store a value for `ttl_seconds`."""
        ...

    def delete(self, key: str) -> None:
        """Remove a key."""
        ...

    def incr(self, key: str, ttl_seconds: int, amount: int = 1) -> int:
        """Atomically add `amount` (one by default); the key expires `ttl_seconds` after it
        was created."""
        ...

    def read_generation(self, gen_key: str, busy_key: str) -> tuple[str, int]:
        """The scope's generation token (created if missing) and its changes in flight."""
        ...

    def begin_change(self, gen_key: str, busy_key: str, busy_ttl_seconds: int) -> None:
        """A change is about to commit: new token, one more change in flight."""
        ...

    def end_change(self, gen_key: str, busy_key: str) -> None:
        """A change committed or rolled back: new token, one change fewer in flight."""
        ...

    def ping(self) -> bool:
        """Whether the cache answers."""
        ...


def new_generation() -> str:
    """A generation token that never repeats (so an evicted token cannot come back)."""
    return secrets.token_hex(8)


class MemoryCache:
    """Process-local TTL cache for the embedded single-process mode."""

    kind = "memory"

    def __init__(self, max_entries: int = 100_000) -> None:
        self._data: dict[str, tuple[float, str]] = {}
        self._lock = threading.Lock()
        self._max = max_entries

    def _get(self, key: str, now: float) -> str | None:
        item = self._data.get(key)
        if item is None:
            return None
        if item[0] < now:
            del self._data[key]
            return None
        return item[1]

    def _put(self, key: str, value: str, expires: float) -> None:
        if key not in self._data and len(self._data) >= self._max:
            self._evict()
        self._data[key] = (expires, value)

    def get(self, key: str) -> str | None:
        with self._lock:
            return self._get(key, time.monotonic())

    def get_many(self, keys: list[str]) -> list[str | None]:
        with self._lock:
            now = time.monotonic()
            return [self._get(k, now) for k in keys]

    def set(self, key: str, value: str, ttl_seconds: int) -> None:
        with self._lock:
            self._put(key, value, time.monotonic() + ttl_seconds)

    def delete(self, key: str) -> None:
        with self._lock:
            self._data.pop(key, None)

    def incr(self, key: str, ttl_seconds: int, amount: int = 1) -> int:
        with self._lock:
            now = time.monotonic()
            item = self._data.get(key)
            if item is None or item[0] < now:
                self._put(key, str(amount), now + ttl_seconds)
                return amount
            value = int(item[1]) + amount
            self._data[key] = (item[0], str(value))
            return value

    def read_generation(self, gen_key: str, busy_key: str) -> tuple[str, int]:
        with self._lock:
            now = time.monotonic()
            gen = self._get(gen_key, now)
            if gen is None:
                gen = new_generation()
                self._put(gen_key, gen, now + GENERATION_TTL_SECONDS)
            return gen, int(self._get(busy_key, now) or 0)

    def begin_change(self, gen_key: str, busy_key: str, busy_ttl_seconds: int) -> None:
        with self._lock:
            now = time.monotonic()
            self._put(gen_key, new_generation(), now + GENERATION_TTL_SECONDS)
            busy = int(self._get(busy_key, now) or 0) + 1
            self._put(busy_key, str(busy), now + busy_ttl_seconds)

    def end_change(self, gen_key: str, busy_key: str) -> None:
        with self._lock:
            now = time.monotonic()
            self._put(gen_key, new_generation(), now + GENERATION_TTL_SECONDS)
            busy = int(self._get(busy_key, now) or 0) - 1
            if busy <= 0:
                self._data.pop(busy_key, None)
            else:
                self._data[busy_key] = (self._data[busy_key][0], str(busy))

    def ping(self) -> bool:
        return True

    def _evict(self) -> None:
        now = time.monotonic()
        for k in [k for k, (exp, _) in self._data.items() if exp < now]:
            del self._data[k]
        while len(self._data) >= self._max:
            self._data.pop(next(iter(self._data)))


# Each script is atomic in Redis: a reader never sees a new token without its busy count.
_READ_GENERATION = """
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2], 'NX')
return {redis.call('GET', KEYS[1]), redis.call('GET', KEYS[2])}
"""
_BEGIN_CHANGE = """
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
local n = redis.call('INCR', KEYS[2])
redis.call('EXPIRE', KEYS[2], ARGV[3])
return n
"""
_END_CHANGE = """
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
local n = redis.call('DECR', KEYS[2])
if n <= 0 then redis.call('DEL', KEYS[2]) end
return n
"""


def split_prefix(url: str) -> tuple[str, str]:
    """Take docstore's own `prefix=` query parameter off a Redis URL: (url, key prefix)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    prefix = "".join(v for k, v in query if k == "prefix")
    rest = urlencode([(k, v) for k, v in query if k != "prefix"])
    return urlunsplit(parts._replace(query=rest)), prefix


class RedisCache:
    """Shared cache for several server processes.

    `redis://host:6379/0?prefix=docstore:` puts every key under a prefix, so several
    deployments (or test runs) can share one Redis.
    """

    kind = "redis"

    def __init__(self, url: str) -> None:
        url, self.prefix = split_prefix(url)
        # No retries: the generation scripts (DECR of the busy count) and INCRBY are not
        # idempotent, and a retry after a reply lost to a timeout would apply them twice
        # (a doubly-ended change would let a cache fill during another writer's change).
        # A failed call raises CacheError and the caller falls back to the database.
        self._r = redis.Redis.from_url(
            url,
            socket_timeout=0.5,
            socket_connect_timeout=0.5,
            decode_responses=True,
            retry=Retry(NoBackoff(), 0),
        )
        self._read_generation = self._r.register_script(_READ_GENERATION)
        self._begin_change = self._r.register_script(_BEGIN_CHANGE)
        self._end_change = self._r.register_script(_END_CHANGE)

    def _k(self, key: str) -> str:
        return self.prefix + key

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except redis.RedisError as exc:
            raise CacheError(str(exc)) from exc

    def get(self, key: str) -> str | None:
        value = self._call(self._r.get, self._k(key))
        return None if value is None else str(value)

    def get_many(self, keys: list[str]) -> list[str | None]:
        values = self._call(self._r.mget, [self._k(k) for k in keys])
        return [None if v is None else str(v) for v in values]

    def set(self, key: str, value: str, ttl_seconds: int) -> None:
        self._call(self._r.set, self._k(key), value, ex=ttl_seconds)

    def delete(self, key: str) -> None:
        self._call(self._r.delete, self._k(key))

    def incr(self, key: str, ttl_seconds: int, amount: int = 1) -> int:
        def run() -> int:
            pipe = self._r.pipeline()
            pipe.incrby(self._k(key), amount)
            pipe.expire(self._k(key), ttl_seconds, nx=True)
            value, _ = pipe.execute()
            return int(value)

        return int(self._call(run))

    def read_generation(self, gen_key: str, busy_key: str) -> tuple[str, int]:
        keys = [self._k(gen_key), self._k(busy_key)]
        gen, busy = self._call(
            self._read_generation, keys=keys, args=[new_generation(), GENERATION_TTL_SECONDS]
        )
        return str(gen), int(busy or 0)

    def begin_change(self, gen_key: str, busy_key: str, busy_ttl_seconds: int) -> None:
        keys = [self._k(gen_key), self._k(busy_key)]
        args = [new_generation(), GENERATION_TTL_SECONDS, busy_ttl_seconds]
        self._call(self._begin_change, keys=keys, args=args)

    def end_change(self, gen_key: str, busy_key: str) -> None:
        keys = [self._k(gen_key), self._k(busy_key)]
        self._call(self._end_change, keys=keys, args=[new_generation(), GENERATION_TTL_SECONDS])

    def ping(self) -> bool:
        try:
            return bool(self._r.ping())
        except redis.RedisError:
            return False


def make_cache(redis_url: str | None) -> Cache:
    """Redis when a URL is configured, else the in-process cache."""
    return RedisCache(redis_url) if redis_url else MemoryCache()
