"""What sharing needs from the process at run time, reachable from any session.

`for_session(db)` finds the `SharingRuntime` of the services the session came from (built
on first use and kept in `Services.extensions`), so `level_for(db, ...)` and the link checks
find the permission cache and the rate-limit counters without a module-level client.
`bind(database, cache)` puts one into the sessions of a bare `Database`.
"""

from __future__ import annotations

import hashlib
import logging
import multiprocessing
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from docstore import metrics
from docstore.cache import Cache, CacheError, MemoryCache
from docstore.db import Database, after_commit, on_rollback
from docstore.errors import DocstoreError
from docstore.services import for_session as services_for

log = logging.getLogger(__name__)

RUNTIME_KEY = "docstore.sharing"
_CHANGED_KEY = "docstore.sharing.changed_owners"

GRANT_TTL_SECONDS = 60
# A change in flight blocks caching for its owner at most this long (a crash between
# begin and end); it must exceed the time from begin_change to the end of the commit.
BUSY_TTL_SECONDS = 60
# After a cache failure, reads go straight to the database for this long.
BREAKER_SECONDS = 2.0


class CacheUnavailable(DocstoreError):
    """A revoke or downgrade cannot be made effective in every process's cache right now."""

    status, code, title = 503, "cache_unavailable", "The permission cache is unavailable"


@dataclass
class Ticket:
    """Permission to store a freshly computed grant under the generation read before it."""

    key: str
    gen: str


class GrantCache:
    """Effective share grant per (user, item, folder path), 60 s, invalidated per owner.

    Entry keys hold the item's folder path (its ancestor chain) and creation time, so after
    a move or restore, and for an item that reuses a purged item's id, the check looks up a
    different key by construction (trash itself is checked on the item row, never cached).
    The entry is then a function of the share rows alone. The shares that count for an item
    are on it or its ancestors, which all belong to its owner (ownership follows the
    folder), so every share change bumps that owner's generation token, which entries carry.

    Correctness across processes (revoke/downgrade never served stale once it returned):
    - the writer calls `begin_change` (new token, in-flight count + 1) before its commit and
      `end_change` (new token, count - 1) after the commit or rollback;
    - a reader reads token, in-flight count and entry in one round trip *before* querying
      the database, uses an entry only if its token is current and nothing is in flight,
      and stores its answer under the token it read, and only if nothing was in flight.
    An entry with the current token was therefore computed after every committed change.
    If `end_change` fails, the in-flight count keeps the owner uncached until it expires.
    """

    def __init__(
        self,
        cache: Cache,
        ttl_seconds: int = GRANT_TTL_SECONDS,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.cache = cache
        self.ttl = ttl_seconds
        # The wall clock an entry's share expiry is compared with (tests move it forward).
        self.clock = clock or _wall_clock
        self._down_until = 0.0

    @staticmethod
    def _scope(owner_id: int) -> tuple[str, str]:
        return f"perm:gen:{owner_id}", f"perm:busy:{owner_id}"

    @staticmethod
    def entry_key(user_id: int, document_id: int | None, item: str) -> str:
        """The entry for a user on a document (or, with None, a folder) at a place: the
        folder path (plus anything else that identifies the item)."""
        where = hashlib.blake2b(item.encode(), digest_size=12).hexdigest()
        return f"perm:e:{user_id}:{'f' if document_id is None else document_id}:{where}"

    def _trip(self, exc: Exception) -> None:
        if time.monotonic() >= self._down_until:
            log.warning("permission cache unavailable, using the database: %s", exc)
        self._down_until = time.monotonic() + BREAKER_SECONDS

    def lookup(
        self, user_id: int, owner_id: int, document_id: int | None, item: str
    ) -> tuple[int | None, Ticket | None]:
        """(cached level, None) on a hit; else (None, ticket to store the DB answer, or None)."""
        if time.monotonic() < self._down_until:
            return None, None
        gen_key, busy_key = self._scope(owner_id)
        key = self.entry_key(user_id, document_id, item)
        try:
            gen, busy, entry = self.cache.get_many([gen_key, busy_key, key])
            if gen is None:
                gen, in_flight = self.cache.read_generation(gen_key, busy_key)
            else:
                in_flight = int(busy or 0)
        except (CacheError, ValueError) as exc:
            self._trip(exc)
            return None, None
        if in_flight > 0:
            return None, None
        if entry is not None:
            entry_gen, _, rest = entry.partition("|")
            level, _, valid_until = rest.partition("|")
            if entry_gen == gen and (not valid_until or self.clock() < float(valid_until)):
                metrics.PERMISSION_CACHE.labels("hit").inc()
                return int(level), None
        metrics.PERMISSION_CACHE.labels("miss").inc()
        return None, Ticket(key, gen)

    def store(self, ticket: Ticket, level: int, valid_until: datetime | None) -> None:
        """Keep a grant computed after `ticket` was issued; it ends when a share expires."""
        until = "" if valid_until is None else repr(valid_until.timestamp())
        try:
            self.cache.set(ticket.key, f"{ticket.gen}|{level}|{until}", self.ttl)
        except CacheError as exc:
            self._trip(exc)

    def begin_change(self, owner_id: int) -> None:
        """Before commit: invalidate the owner's entries and hold caching off. May raise."""
        self.cache.begin_change(*self._scope(owner_id), BUSY_TTL_SECONDS)

    def end_change(self, owner_id: int) -> None:
        """After commit or rollback: invalidate again and release the hold."""
        try:
            self.cache.end_change(*self._scope(owner_id))
        except CacheError as exc:
            # Entries stay off for this owner until the in-flight count expires: still correct.
            log.error("could not end a permission change for owner %s: %s", owner_id, exc)


@dataclass
class SharingRuntime:
    """The grant cache (None: always ask the database). The password-guess counters are
    `docstore.throttle.for_session`."""

    cache: Cache
    grants: GrantCache | None


_UNBOUND = SharingRuntime(cache=MemoryCache(), grants=None)


def build(database: Database, cache: Cache) -> SharingRuntime:
    """The runtime for a process serving `database` with `cache`.

    Grants are cached in Redis, or in-process only where this process is the only server:
    on SQLite, and not as one of `serve --workers N`. On PostgreSQL several processes may
    serve one database, and a revoke in one must reach the caches of all.
    """
    alone = not database.is_postgres and multiprocessing.parent_process() is None
    shared = cache.kind == "redis" or alone
    runtime = SharingRuntime(cache=cache, grants=GrantCache(cache) if shared else None)
    if not shared:
        log.info("no Redis configured: permissions are checked in the database every time")
    return runtime


def bind(database: Database, cache: Cache) -> SharingRuntime:
    """Make a runtime reachable from every session of a bare `database` (no `Services`)."""
    runtime = build(database, cache)
    database.configure_sessions({RUNTIME_KEY: runtime})
    return runtime


def for_session(db: Session) -> SharingRuntime:
    """The runtime of this session's services (built on first use), else the one bound to
    its database, else a cache-less one."""
    runtime = db.info.get(RUNTIME_KEY)
    if isinstance(runtime, SharingRuntime):
        return runtime
    svc = services_for(db)
    if svc is None:
        return _UNBOUND
    found = svc.extensions.get(RUNTIME_KEY)
    if not isinstance(found, SharingRuntime):
        # setdefault: two threads racing here end up sharing whichever was stored first.
        found = svc.extensions.setdefault(RUNTIME_KEY, build(svc.database, svc.cache))
    db.info[RUNTIME_KEY] = found
    return found


def grants_changed(db: Session, owner_id: int, *, strict: bool) -> None:
    """Cached grants on `owner_id`'s items are about to change in this transaction.

    Call before the change commits. `strict` (a revoke, downgrade or earlier expiry): if the
    caches cannot be told, fail with 503 so nothing commits. Otherwise (a new or wider
    grant) a cache failure only delays the new access by at most the TTL.
    """
    grants = for_session(db).grants
    if grants is None:
        return
    done: set[int] = db.info.setdefault(_CHANGED_KEY, set())
    if owner_id in done:
        return
    try:
        grants.begin_change(owner_id)
    except CacheError as exc:
        if strict:
            raise CacheUnavailable(
                "The change could not be made effective everywhere; nothing was changed."
            ) from exc
        log.warning("permission cache not told about a new grant: %s", exc)
        return
    done.add(owner_id)

    def end() -> None:
        done.discard(owner_id)
        grants.end_change(owner_id)

    after_commit(db, end)
    on_rollback(db, end)


def _wall_clock() -> float:
    """`time.time()`, looked up at each call (so a test that moves the module's clock moves
    the grant cache's too)."""
    return time.time()
