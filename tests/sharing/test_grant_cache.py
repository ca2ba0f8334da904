"""The permission cache: generation tokens and in-flight counts keep stale grants out,
whatever the interleaving of a reader and a writer; Redis failures fall back to the DB."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, select

from docstore.app import create_app
from docstore.cache import Cache, MemoryCache, RedisCache, make_cache, split_prefix
from docstore.context import Actor
from docstore.db import Database
from docstore.sharing import runtime
from docstore.sharing.models import Share
from docstore.sharing.permissions import Level, level_for
from docstore.sharing.runtime import GrantCache
from docstore.users.models import User
from tests.fixtures.app import BASE, Api, make_settings
from tests.sharing.helpers import API, code, in_seconds, link, share_with, tree, upload

PATH = "/1/7/9/"


@pytest.fixture(params=["memory", "redis"])
def cache(request: pytest.FixtureRequest) -> Cache:
    """The in-process cache and a real Redis behind the same interface."""
    if request.param == "memory":
        return MemoryCache()
    return make_cache(request.getfixturevalue("redis_url"))


def test_an_answer_computed_before_a_change_is_never_served(cache: Cache) -> None:
    reader, writer = GrantCache(cache), GrantCache(cache)
    _, ticket = reader.lookup(1, 42, 5, PATH)
    assert ticket is not None
    # The reader queried the database, then a revoke began (and committed) elsewhere;
    # the reader's late write of the old answer must not be used.
    writer.begin_change(42)
    reader.store(ticket, int(Level.EDIT), None)
    assert reader.lookup(1, 42, 5, PATH) == (None, None)  # change in flight: no cache
    writer.end_change(42)
    level, fresh = reader.lookup(1, 42, 5, PATH)
    assert level is None and fresh is not None
    reader.store(fresh, int(Level.NONE), None)
    assert reader.lookup(1, 42, 5, PATH) == (int(Level.NONE), None)
    # Other owners' entries are untouched by the change.
    _, other = reader.lookup(1, 43, 5, PATH)
    assert other is not None
    reader.store(other, int(Level.VIEW), None)
    writer.begin_change(42)
    writer.end_change(42)
    assert reader.lookup(1, 43, 5, PATH) == (int(Level.VIEW), None)


def test_a_lost_end_of_change_keeps_the_owner_uncached_until_it_expires(
    cache: Cache, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runtime, "BUSY_TTL_SECONDS", 3)
    grants = GrantCache(cache)
    _, ticket = grants.lookup(1, 42, None, PATH)
    assert ticket is not None
    grants.begin_change(42)  # the process dies before end_change
    grants.store(ticket, int(Level.EDIT), None)
    assert grants.lookup(1, 42, None, PATH) == (None, None)
    time.sleep(3.2)
    level, ticket = grants.lookup(1, 42, None, PATH)
    assert level is None and ticket is not None  # the stale entry carries an old token


def test_an_entry_ends_when_its_share_expires(cache: Cache) -> None:
    now = [time.time()]
    grants = GrantCache(cache, clock=lambda: now[0])
    _, ticket = grants.lookup(1, 42, 5, PATH)
    assert ticket is not None
    grants.store(ticket, int(Level.VIEW), datetime.fromtimestamp(now[0] + 2, UTC))
    now[0] += 1.9
    assert grants.lookup(1, 42, 5, PATH)[0] == int(Level.VIEW)
    now[0] += 0.2  # the share has expired: the entry is a miss, the database is asked
    level, fresh = grants.lookup(1, 42, 5, PATH)
    assert level is None and fresh is not None


def test_a_lost_generation_token_invalidates_instead_of_reviving(cache: Cache) -> None:
    grants = GrantCache(cache)
    _, ticket = grants.lookup(1, 42, 5, PATH)
    assert ticket is not None
    grants.store(ticket, int(Level.EDIT), None)
    cache.delete("perm:gen:42")  # evicted
    assert grants.lookup(1, 42, 5, PATH)[0] is None


def test_redis_url_prefix_is_taken_off_and_applied(redis_url: str) -> None:
    url, prefix = split_prefix(redis_url)
    assert "prefix" not in url and prefix.startswith("docstore-test:")
    cache = make_cache(redis_url)
    assert isinstance(cache, RedisCache)
    cache.set("k", "v", 10)
    raw = make_cache(url)
    assert raw.get("k") is None and raw.get(prefix + "k") == "v"


def _deep_world(api: Api, depth: int) -> tuple[Any, Any, dict[str, Any], dict[str, Any], int]:
    """ann's folders `depth` deep with a document at the bottom; bob has COMMENT halfway."""
    ann, bob = api.register("ann"), api.register("bob")
    folders = tree(ann, *[f"d{i}" for i in range(depth)])
    doc = upload(ann, "deep.txt", b"deep", folders[-1]["id"])
    s = share_with(ann, bob, "COMMENT", folder_id=folders[depth // 2]["id"])
    return ann, bob, folders[-1], doc, s["id"]


def test_a_check_is_one_query_at_any_depth_and_none_when_warm(api: Api) -> None:
    ann, bob, folder, doc, _ = _deep_world(api, 30)
    database = api.client.app.state.services.database  # type: ignore[attr-defined]
    statements: list[str] = []

    def count(_c: Any, _cur: Any, statement: str, *_: Any) -> None:
        if "shares" in statement:
            statements.append(statement)

    event.listen(database.engine, "before_cursor_execute", count)
    try:
        with database.transaction() as db:
            actor = Actor(user=db.get_one(User, bob.id))
            assert level_for(db, actor, ann.id, folder["path"], doc["id"]) == Level.COMMENT
            cold = len(statements)
            assert level_for(db, actor, ann.id, folder["path"], doc["id"]) == Level.COMMENT
    finally:
        event.remove(database.engine, "before_cursor_execute", count)
    assert cold == 1
    # SQLite: the in-process cache answers the warm check. PostgreSQL without Redis never
    # caches (other processes could not be told about a revoke).
    assert len(statements) == (2 if database.is_postgres else 1)


def _share_queries(database: Database) -> tuple[list[str], Callable[[], None]]:
    """Statements that read shares from now on, on every engine of `database` (SQLite
    reads go through a read-only engine of their own); and how to stop listening."""
    seen: list[str] = []

    def count(_c: Any, _cur: Any, statement: str, *_: Any) -> None:
        if "FROM shares" in statement:
            seen.append(statement)

    engines = {database.engine, database.read_engine}
    for engine in engines:
        event.listen(engine, "before_cursor_execute", count)

    def stop() -> None:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", count)

    return seen, stop


@pytest.fixture
def redis_api(tmp_path: Path, database_url: str, redis_url: str) -> Iterator[Api]:
    """The app with a Redis permission cache (on both databases)."""
    settings = make_settings(tmp_path, database_url, redis_url=redis_url)
    with TestClient(create_app(settings), base_url=BASE, follow_redirects=False) as client:
        yield Api(client)


def test_redis_cache_serves_warm_checks_and_revokes_at_once(redis_api: Api) -> None:
    api = redis_api
    ann, bob, _, doc, share_id = _deep_world(api, 8)
    database = api.client.app.state.services.database  # type: ignore[attr-defined]
    queries, stop = _share_queries(database)
    try:
        # A check through `level_for` (GET /documents/{id} itself reads the grant in its own
        # statement on PostgreSQL, past the cache: documents.service.get_in_one_statement).
        assert bob.get(f"{API}/documents/{doc['id']}/versions").status_code == 200
        cold = len(queries)
        assert bob.get(f"{API}/documents/{doc['id']}/versions").status_code == 200
        assert cold >= 1 and len(queries) == cold  # answered from Redis
    finally:
        stop()
    r = ann.patch(f"{API}/shares/{share_id}", json={"permission": "VIEW"})
    assert r.status_code == 200
    r = bob.post(f"{API}/documents/{doc['id']}/comments", json={"body": "late"})
    assert code(r) == (403, "forbidden")
    assert bob.get(f"{API}/documents/{doc['id']}").status_code == 200
    assert ann.delete(f"{API}/shares/{share_id}").status_code == 204
    assert bob.get(f"{API}/documents/{doc['id']}").status_code == 404
    assert bob.get(f"{API}/documents/{doc['id']}/versions").status_code == 404


@pytest.fixture
def dead_redis_api(tmp_path: Path, sqlite_url: str) -> Iterator[Api]:
    """The app configured with a Redis that refuses connections."""
    settings = make_settings(tmp_path, sqlite_url, redis_url="redis://127.0.0.1:1/0")
    with TestClient(create_app(settings), base_url=BASE, follow_redirects=False) as client:
        yield Api(client)


def test_without_redis_checks_use_the_database_and_revokes_fail_closed(
    dead_redis_api: Api,
) -> None:
    api = dead_redis_api
    ann, bob = api.register("ann"), api.register("bob")
    doc = upload(ann, "d.txt", b"d")
    # A new grant does not need the caches: it can only add access.
    s = share_with(ann, bob, "EDIT", document_id=doc["id"])
    assert bob.get(f"{API}/documents/{doc['id']}").json()["permission"] == "EDIT"
    # Taking access away must reach every cache, or nothing changes.
    r = ann.delete(f"{API}/shares/{s['id']}")
    assert code(r) == (503, "cache_unavailable")
    r = ann.patch(f"{API}/shares/{s['id']}", json={"permission": "VIEW"})
    assert code(r) == (503, "cache_unavailable")
    database = api.client.app.state.services.database  # type: ignore[attr-defined]
    with database.transaction() as db:
        row = db.scalar(select(Share).where(Share.id == s["id"]))
        assert row is not None and row.is_active and row.permission == int(Level.EDIT)
    assert bob.get(f"{API}/documents/{doc['id']}").status_code == 200
    # Links are never cached: revoking one works without Redis.
    lk = link(ann, "VIEW", document_id=doc["id"])
    assert ann.delete(f"{API}/shares/{lk['id']}").status_code == 204
    assert api.client.get(f"{API}/links/{lk['token']}").status_code == 410


def _expiring_grant_scenario(api: Api) -> None:
    """A grant cached from a share expiring in an hour; then the hour passes (the cache's
    clock moves on, and the database's view of the share with it): access ends at once."""
    ann, bob = api.register("ann"), api.register("bob")
    doc = upload(ann, "d.txt", b"d")
    s = share_with(ann, bob, "VIEW", document_id=doc["id"], expires_at=in_seconds(3600))
    database = api.client.app.state.services.database  # type: ignore[attr-defined]
    with database.sessionmaker() as session:
        grants = runtime.for_session(session).grants
    assert grants is not None
    queries, stop = _share_queries(database)
    try:  # through `level_for` and its cache (see the test above)
        assert bob.get(f"{API}/documents/{doc['id']}/versions").status_code == 200
        cold = len(queries)
        assert bob.get(f"{API}/documents/{doc['id']}/versions").status_code == 200
        assert cold >= 1 and len(queries) == cold  # the second answer came from the cache
    finally:
        stop()
    later = time.time() + 3601
    grants.clock = lambda: later
    # The database compares expires_at with its real clock: moving the share's expiry back
    # an hour is the same as moving its clock on. No share change is announced to the cache.
    with database.transaction() as db:
        row = db.get_one(Share, s["id"])
        row.expires_at = row.expires_at - timedelta(seconds=3601)
    assert bob.get(f"{API}/documents/{doc['id']}/versions").status_code == 404
    assert bob.get(f"{API}/documents/{doc['id']}").status_code == 404


def test_a_cached_grant_ends_with_its_share_in_process(sqlite_url: str, tmp_path: Path) -> None:
    settings = make_settings(tmp_path, sqlite_url)
    with TestClient(create_app(settings), base_url=BASE, follow_redirects=False) as client:
        _expiring_grant_scenario(Api(client))


def test_a_cached_grant_ends_with_its_share_in_redis(redis_api: Api) -> None:
    _expiring_grant_scenario(redis_api)


def test_grants_are_cached_in_process_only_where_one_process_serves(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sqlite, postgres = Database("sqlite://"), Database("postgresql+psycopg://x@127.0.0.1:1/x")
    redis_cache = RedisCache("redis://127.0.0.1:1/0")  # never contacted here
    assert runtime.bind(sqlite, MemoryCache()).grants is not None
    assert runtime.bind(postgres, MemoryCache()).grants is None
    assert runtime.bind(postgres, redis_cache).grants is not None
    with sqlite.sessionmaker() as session:
        assert runtime.for_session(session).grants is not None
    # One of `docstore serve --workers N`: another worker could not be told about a revoke.
    monkeypatch.setattr(runtime.multiprocessing, "parent_process", lambda: object())
    assert runtime.bind(sqlite, MemoryCache()).grants is None
    assert runtime.bind(sqlite, redis_cache).grants is not None
