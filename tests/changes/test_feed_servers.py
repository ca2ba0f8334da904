"""The change feed across real server processes on one PostgreSQL and one Redis:

- a write through one process wakes a long-poll waiting on the other (bounded: 5 s), and a
  cursor handed out by one process reads on the other;
- 1,000 idle long-polls cost the server no thread each (its threads, counted in
  /proc/<pid>/task, grow by far less than the waiters);
- `kill -9` between a write and its commit loses no committed change and reports none for
  the write that never committed (the last test: it kills the first process).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest
import redis

from docstore.changes.service import LOCK_KEY
from tests.fixtures.app import User
from tests.fixtures.databases import lasting_database
from tests.fixtures.redis import REDIS_URL, require_redis
from tests.fixtures.server import ServerProcess, start_server
from tests.sharing.helpers import API, remote_api

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.xdist_group("feed-servers")]

WAITERS = 1000


@pytest.fixture(scope="module")
def servers(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[ServerProcess]]:
    """Two server processes on one PostgreSQL database and one Redis key prefix."""
    client = require_redis()
    prefix = f"docstore-test:{uuid.uuid4().hex[:12]}:"
    env = {
        "DOCSTORE_REDIS_URL": f"{REDIS_URL}{'&' if '?' in REDIS_URL else '?'}prefix={prefix}",
        "DOCSTORE_MAX_CONCURRENT_REQUESTS": str(WAITERS + 200),
    }
    tmp = tmp_path_factory.mktemp("feed-servers")
    with lasting_database(request, "postgres", tmp) as url:
        started = [start_server(tmp, url, env)]
        try:
            started.append(start_server(tmp, url, env))
            yield started
        finally:
            for srv in started:
                srv.stop()
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


def _user(url: str, name: str) -> User:
    return remote_api(url).register(f"{name}{uuid.uuid4().hex[:8]}")


def _on(srv: ServerProcess, user: User) -> User:
    """The same account, talking to another process."""
    return User(remote_api(srv.url), user.token, user.info)


def _cursor(user: User) -> str:
    r = user.get(f"{API}/changes/cursor")
    assert r.status_code == 200, r.text
    return str(r.json()["cursor"])


def _changes(user: User, cursor: str) -> list[dict[str, Any]]:
    r = user.get(f"{API}/changes", params={"cursor": cursor, "limit": 1000})
    assert r.status_code == 200, r.text
    return list(r.json()["changes"])


def test_a_write_on_one_process_wakes_a_waiter_on_the_other(servers: list[ServerProcess]) -> None:
    ann = _user(servers[0].url, "ann")
    ann2 = _on(servers[1], ann)
    cursor = _cursor(ann)  # handed out by process 1, read on process 2
    answer: dict[str, Any] = {}

    def wait() -> None:
        started = time.monotonic()
        r = ann2.get(f"{API}/changes/wait", params={"cursor": cursor, "timeout": 30})
        answer.update(status=r.status_code, body=r.json(), took=time.monotonic() - started)

    waiter = threading.Thread(target=wait)
    waiter.start()
    time.sleep(1)  # the waiter is (most likely) parked; if not, it finds the change at once
    written = time.monotonic()
    folder = ann.mkdir("woken")
    waiter.join(30)
    assert answer["status"] == 200 and answer["body"]["changes"] is True
    assert time.monotonic() - written < 5  # woken, not timed out (timeout was 30 s)
    got = _changes(ann2, cursor)
    assert [(c["op"], c["id"]) for c in got] == [("created", folder["id"])]
    assert got[0]["entry"]["path"] == "/woken"

    # Nothing visible to Bob changed: his waiter is not answered early.
    bob2 = _on(servers[1], _user(servers[0].url, "bob"))
    r = bob2.get(f"{API}/changes/wait", params={"cursor": _cursor(bob2), "timeout": 1})
    assert r.json()["changes"] is False
    assert (
        ann.get(f"{API}/changes/wait", params={"cursor": cursor, "timeout": 61}).status_code == 422
    )


def _threads(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def _connections(port: int) -> int:
    """Established TCP connections whose local end is `port` (the server's side of each
    client connection): counted by port, not as the process's sockets, whose number also
    moves with its database and Redis connections (once 998 against 1,000 waiters)."""
    n = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as rows:
            next(rows)
            for row in rows:
                local, state = row.split()[1], row.split()[3]
                n += state == "01" and int(local.rsplit(":", 1)[1], 16) == port
    return n


def test_a_thousand_idle_waiters_cost_no_thread_each(servers: list[ServerProcess]) -> None:
    srv = servers[1]
    ann = _user(srv.url, "idle")
    cursor = _cursor(ann)
    pid = srv.proc.pid
    port = int(srv.url.rsplit(":", 1)[1])
    before_threads = _threads(pid)
    seen: dict[str, int] = {}

    async def main() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=WAITERS + 10, max_keepalive_connections=0)
        async with httpx.AsyncClient(base_url=srv.url, limits=limits, timeout=90) as client:
            headers = {"Authorization": f"Bearer {ann.token}"}

            async def one() -> httpx.Response:
                params = {"cursor": cursor, "timeout": 60}
                return await client.get(f"{API}/changes/wait", params=params, headers=headers)

            tasks = []
            for _ in range(WAITERS // 50):  # in batches: the check before waiting is brief
                tasks.extend(asyncio.create_task(one()) for _ in range(50))
                await asyncio.sleep(0.3)
            for _ in range(600):  # until the server holds every connection (bounded: 60 s)
                if _connections(port) >= WAITERS:
                    break
                await asyncio.sleep(0.1)
            await asyncio.sleep(2)  # their first checks done, all parked
            seen["sockets"] = _connections(port)
            seen["threads"] = _threads(pid)
            assert not any(t.done() for t in tasks)  # all still waiting
            await asyncio.to_thread(ann.mkdir, "wake-all")
            return await asyncio.gather(*tasks)

    answers = asyncio.run(main())
    print(f"server threads: {before_threads} idle, {seen['threads']} with {WAITERS} waiters")
    assert seen["sockets"] >= WAITERS
    assert seen["threads"] - before_threads < WAITERS // 10, (before_threads, seen)
    assert [r.status_code for r in answers] == [200] * WAITERS
    assert all(r.json()["changes"] is True for r in answers)


def test_kill9_before_the_commit_reports_no_change_and_loses_none(
    servers: list[ServerProcess],
) -> None:
    """The test holds the outbox's append lock, so a write through process 1 stops
    between its changes and its commit; process 1 is killed there. Process 2 then reads
    every committed change and none of the uncommitted one."""
    first, second = servers
    ann = _user(first.url, "crash")
    cursor = _cursor(ann)
    committed = [ann.mkdir(f"kept{i}")["id"] for i in range(3)]
    dsn = first.database_url
    assert dsn is not None
    dsn = dsn.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as lock, psycopg.connect(dsn) as watch:
        lock.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
        stuck = threading.Thread(target=lambda: _ignore(lambda: ann.mkdir("never")), daemon=True)
        stuck.start()
        for _ in range(300):  # until the write waits on the lock (bounded: 30 s)
            rows = watch.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND wait_event_type = 'Lock' AND query ILIKE '%%pg_advisory_xact_lock%%'"
            ).fetchone()
            watch.commit()
            if rows and rows[0] >= 1:
                break
            time.sleep(0.1)
        else:
            pytest.fail("the write never reached its commit")
        first.proc.send_signal(signal.SIGKILL)
        first.proc.wait(30)
        lock.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))
    stuck.join(10)
    ann2 = _on(second, ann)
    got = _changes(ann2, cursor)
    assert [(c["op"], c["id"]) for c in got] == [("created", i) for i in committed]
    names = {c["entry"]["name"] for c in got}
    assert "never" not in names
    listed = ann2.get(f"{API}/folders/root/children").json()["items"]
    assert sorted(i["id"] for i in listed) == sorted(committed)


def _ignore(fn: Any) -> None:
    # The server dies under the request: that is the point.
    with contextlib.suppress(httpx.HTTPError, AssertionError, redis.RedisError, OSError):
        fn()
