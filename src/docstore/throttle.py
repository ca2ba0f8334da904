"""Counters of password guesses (logins, link passwords) in the shared cache.

Counters live in the cache: Redis when configured, so every server process counts the same
attempts. When it does not answer, this process's fallback counts instead, so a limit still
holds per process. A *block* is a key holding the Unix time at which it ends, so a refusal
can say when to come back (`Retry-After`) without asking the cache for a key's TTL.

Callers count an attempt *before* checking the password and take it back when the password
was right: a burst of parallel guesses then meets the limit as surely as a sequence does.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

from sqlalchemy.orm import Session

from docstore.cache import Cache, CacheError, MemoryCache
from docstore.services import for_session as services_for

log = logging.getLogger(__name__)


def backoff(failures: int, free: int, base: float, cap: float) -> float:
    """The wait after `failures` failures: none for the first `free`, then `base` doubled
    with each further failure, never more than `cap`."""
    over = failures - free
    if over <= 0 or base <= 0:
        return 0.0
    return float(min(cap, base * 2 ** min(over - 1, 60)))


@dataclass
class Throttle:
    """Counters and blocks in `cache`, falling back to `fallback` when it fails."""

    cache: Cache
    fallback: MemoryCache

    def count(self, key: str, ttl_seconds: int, amount: int = 1) -> int:
        """Add `amount` to a counter that lives `ttl_seconds` from its first count; its value."""
        try:
            return self.cache.incr(key, ttl_seconds, amount)
        except CacheError as exc:
            log.warning("rate-limit counters unavailable, using this process's: %s", exc)
            return self.fallback.incr(key, ttl_seconds, amount)

    def counts(self, keys: list[str]) -> list[int]:
        """The counters' values (0 where absent), the larger of the shared and local one."""
        shared = self._get(keys)
        local = self.fallback.get_many(keys)
        return [max(_int(a), _int(b)) for a, b in zip(shared, local, strict=True)]

    def block(self, key: str, seconds: float) -> None:
        """Block `key` for `seconds` from now (a longer block already there is kept)."""
        until = time.time() + seconds
        if self.blocked_for([key]) >= seconds:
            return
        ttl = max(1, math.ceil(seconds))
        try:
            self.cache.set(key, repr(until), ttl)
        except CacheError:
            self.fallback.set(key, repr(until), ttl)

    def blocked_for(self, keys: list[str]) -> float:
        """Seconds until the last of the blocks among `keys` ends (0.0: none is in force)."""
        values = [*self._get(keys), *self.fallback.get_many(keys)]
        now = time.time()
        return max([0.0, *(_float(v) - now for v in values if v is not None)])

    def clear(self, keys: list[str]) -> None:
        """Forget counters or blocks (a success resets an account's failures)."""
        for key in keys:
            try:
                self.cache.delete(key)
            except CacheError as exc:
                log.warning("rate-limit counter %s not reset: %s", key, exc)
            self.fallback.delete(key)

    def _get(self, keys: list[str]) -> list[str | None]:
        try:
            return self.cache.get_many(keys)
        except CacheError as exc:
            log.warning("rate-limit counters unavailable, using this process's: %s", exc)
            return [None] * len(keys)


def _int(value: str | None) -> int:
    try:
        return int(value or 0)
    except ValueError:
        return 0


def _float(value: str) -> float:
    try:
        return float(value)
    except ValueError:
        return 0.0


THROTTLE_KEY = "throttle"
_UNBOUND = Throttle(MemoryCache(), MemoryCache())


def for_session(db: Session) -> Throttle:
    """The process's counters over its services' cache, built on first use and kept in
    `Services.extensions` (one fallback per process); a bare `Database` gets in-process ones."""
    svc = services_for(db)
    if svc is None:
        return _UNBOUND
    found = svc.extensions.get(THROTTLE_KEY)
    if not isinstance(found, Throttle):
        found = svc.extensions.setdefault(THROTTLE_KEY, Throttle(svc.cache, MemoryCache()))
    return found
