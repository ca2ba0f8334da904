"""A small cache interface: Redis when configured, else an in-process TTL map."""

from __future__ import annotations

import threading
import time
from typing import Protocol

import redis


class Cache(Protocol):
    """What docstore asks of a cache; every call may fail and callers fall back to the DB."""

    kind: str

    def get(self, key: str) -> str | None:
        """The value, or None when absent or expired."""
        ...

    def set(self, key: str, value: str, ttl_seconds: int) -> None:
        """Store a value for `ttl_seconds`."""
        ...

    def delete(self, key: str) -> None:
        """Remove a key."""
        ...

    def incr(self, key: str, ttl_seconds: int) -> int:
        """Atomically add one; the key expires `ttl_seconds` after it was created."""
        ...

    def ping(self) -> bool:
        """Whether the cache answers."""
        ...


class MemoryCache:
    """Process-local TTL cache for the embedded single-process mode."""

    kind = "memory"

    def __init__(self, max_entries: int = 100_000) -> None:
        self._data: dict[str, tuple[float, str]] = {}
        self._lock = threading.Lock()
        self._max = max_entries

    def get(self, key: str) -> str | None:
        with self._lock:
            item = self._data.get(key)
            if item is None:
                return None
            if item[0] < time.monotonic():
                del self._data[key]
                return None
            return item[1]

    def set(self, key: str, value: str, ttl_seconds: int) -> None:
        with self._lock:
            if len(self._data) >= self._max:
                self._evict()
            self._data[key] = (time.monotonic() + ttl_seconds, value)

    def delete(self, key: str) -> None:
        with self._lock:
            self._data.pop(key, None)

    def incr(self, key: str, ttl_seconds: int) -> int:
        with self._lock:
            now = time.monotonic()
            item = self._data.get(key)
            if item is None or item[0] < now:
                self._data[key] = (now + ttl_seconds, "1")
                return 1
            value = int(item[1]) + 1
            self._data[key] = (item[0], str(value))
            return value

    def ping(self) -> bool:
        return True

    def _evict(self) -> None:
        now = time.monotonic()
        for k in [k for k, (exp, _) in self._data.items() if exp < now]:
            del self._data[k]
        while len(self._data) >= self._max:
            self._data.pop(next(iter(self._data)))


class RedisCache:
    """Shared cache for several server processes."""

    kind = "redis"

    def __init__(self, url: str) -> None:
        self._r = redis.Redis.from_url(
            url, socket_timeout=0.5, socket_connect_timeout=0.5, decode_responses=True
        )

    def get(self, key: str) -> str | None:
        value = self._r.get(key)
        return None if value is None else str(value)

    def set(self, key: str, value: str, ttl_seconds: int) -> None:
        self._r.set(key, value, ex=ttl_seconds)

    def delete(self, key: str) -> None:
        self._r.delete(key)

    def incr(self, key: str, ttl_seconds: int) -> int:
        pipe = self._r.pipeline()
        pipe.incr(key)
        pipe.expire(key, ttl_seconds, nx=True)
        value, _ = pipe.execute()
        return int(value)

    def ping(self) -> bool:
        try:
            return bool(self._r.ping())
        except redis.RedisError:
            return False


def make_cache(redis_url: str | None) -> Cache:
    """Redis when a URL is configured, else the in-process cache."""
    return RedisCache(redis_url) if redis_url else MemoryCache()
