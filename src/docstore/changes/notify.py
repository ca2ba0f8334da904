"""Waking long-poll waiters when a user's feed grows.

One `Notifier` per process (in `Services.extensions`). A waiter registers an asyncio event
for its user and awaits it: no thread, no database connection. A commit that appended rows
(changes.service) calls `publish(user_ids)` from whatever thread committed: this process's
waiters for those users are woken at once and, with Redis (`DOCSTORE_REDIS_URL`), the ids
are published on one channel that a single listener task per process subscribes to, so a
write on one server process wakes waiters on every other. A lost message only delays a
waiter to its timeout, after which it checks the database again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field

import redis
import redis.asyncio as aioredis

from docstore.cache import split_prefix
from docstore.services import Services

log = logging.getLogger(__name__)

CHANNEL = "changes"
CONCURRENT_CHECKS = 16
_KEY = "docstore.changes.notifier"


@dataclass(eq=False)
class _Waiter:
    loop: asyncio.AbstractEventLoop
    event: asyncio.Event = field(default_factory=asyncio.Event)


class Notifier:
    """This process's waiters by user, and the Redis channel between processes."""

    def __init__(self, redis_url: str | None) -> None:
        self._waiters: dict[int, set[_Waiter]] = {}
        self._lock = threading.Lock()
        self._url: str | None = None
        prefix = ""
        if redis_url:
            self._url, prefix = split_prefix(redis_url)
        self.channel = prefix + CHANNEL
        self._publisher = (
            redis.Redis.from_url(self._url, socket_timeout=0.5, socket_connect_timeout=0.5)
            if self._url
            else None
        )
        # Notices this process has seen, in order, and the last one for each user: a waiter
        # that checked the database after `generation` was N needs no second check unless
        # a notice for its user came after N (`noticed_since`).
        self.generation = 0
        self._last: dict[int, int] = {}
        # Long-polls check the database at most this many at a time (each check is a hop to
        # a worker thread): a burst of waiters, or a thousand woken at once, queue here on
        # the event loop instead of each taking a thread.
        self.checks = asyncio.Semaphore(CONCURRENT_CHECKS)
        self._outgoing: queue.SimpleQueue[str] = queue.SimpleQueue()
        self._sender: threading.Thread | None = None
        self._listener: asyncio.Task[None] | None = None
        self._subscribed: asyncio.Event | None = None

    @property
    def waiting(self) -> int:
        """How many waiters this process holds."""
        with self._lock:
            return sum(len(w) for w in self._waiters.values())

    def publish(self, user_ids: Iterable[int]) -> None:
        """Wake the waiters of these users here and, with Redis, in every process. The
        Redis PUBLISH goes from a thread of its own: a commit never waits for Redis (nor
        for its timeout while Redis is down)."""
        users = set(user_ids)
        self.wake_local(users)
        if self._publisher is None:
            return
        self._outgoing.put(",".join(map(str, sorted(users))))
        with self._lock:
            if self._sender is None or not self._sender.is_alive():
                self._sender = threading.Thread(
                    target=self._send, name="docstore-change-notices", daemon=True
                )
                self._sender.start()

    def _send(self) -> None:
        assert self._publisher is not None
        while True:
            message = self._outgoing.get()
            try:
                self._publisher.publish(self.channel, message)
            except redis.RedisError:  # the waiters elsewhere re-check at their timeout
                log.warning("could not publish a change notice", exc_info=True)

    def wake_local(self, user_ids: Iterable[int]) -> None:
        """Set the events of this process's waiters for these users (any thread)."""
        with self._lock:
            self.generation += 1
            users = list(user_ids)
            for u in users:
                self._last[u] = self.generation
            woken = [w for u in users for w in self._waiters.get(u, ())]
        for waiter in woken:
            with contextlib.suppress(RuntimeError):  # its loop has closed
                waiter.loop.call_soon_threadsafe(waiter.event.set)

    def noticed_since(self, user_id: int, generation: int) -> bool:
        """Whether a notice for the user came after `generation`."""
        with self._lock:
            return self._last.get(user_id, 0) > generation

    async def listening(self) -> None:
        """Make sure this process hears the other processes' notices (with Redis)."""
        if self._url is not None:
            await self._ensure_listener()

    @contextlib.asynccontextmanager
    async def waiter(self, user_id: int) -> AsyncIterator[asyncio.Event]:
        """An event set when the user's feed may have grown, for the block."""
        waiter = _Waiter(asyncio.get_running_loop())
        with self._lock:
            self._waiters.setdefault(user_id, set()).add(waiter)
        try:
            yield waiter.event
        finally:
            with self._lock:
                mine = self._waiters.get(user_id)
                if mine is not None:
                    mine.discard(waiter)
                    if not mine:
                        del self._waiters[user_id]

    async def _ensure_listener(self) -> None:
        if self._listener is None or self._listener.done():
            self._subscribed = asyncio.Event()
            self._listener = asyncio.get_running_loop().create_task(self._listen())
        assert self._subscribed is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._subscribed.wait(), 2)

    async def _listen(self) -> None:
        """The process's one subscriber: wakes local waiters for each published notice;
        reconnects after a second when Redis goes away."""
        assert self._url is not None and self._subscribed is not None
        while True:
            client = aioredis.Redis.from_url(self._url)
            try:
                async with client.pubsub() as pubsub:
                    await pubsub.subscribe(self.channel)
                    self._subscribed.set()
                    async for message in pubsub.listen():
                        if message.get("type") != "message":
                            continue
                        data = message["data"]
                        text = data.decode() if isinstance(data, bytes) else str(data)
                        self.wake_local(int(u) for u in text.split(",") if u.isdigit())
            except asyncio.CancelledError:
                raise
            except (redis.RedisError, OSError):
                log.warning("change notices: Redis subscription lost, retrying", exc_info=True)
                # Waiters re-check at their timeout; wake them now so none waits that long.
                with self._lock:
                    users = list(self._waiters)
                self.wake_local(users)
                await asyncio.sleep(1)
            finally:
                await client.aclose()


def notifier_for(svc: Services) -> Notifier:
    """This process's notifier for these services (built on first use)."""
    notifier = svc.extensions.get(_KEY)
    if not isinstance(notifier, Notifier):
        notifier = svc.extensions.setdefault(_KEY, Notifier(svc.settings.redis_url))
    return notifier
