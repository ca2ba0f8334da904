"""Fixtures for the sharing tests: a real Redis (skipped, or failed in CI, when it is down)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
import redis
from argon2 import PasswordHasher

from docstore import security
from tests.fixtures.services import missing

REDIS_URL = os.environ.get("DOCSTORE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
def redis_url() -> Iterator[str]:
    """A Redis URL whose keys live under a prefix no other test uses; removed afterwards."""
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.RedisError as exc:
        missing("Redis", str(exc))
    prefix = f"docstore-test:{uuid.uuid4().hex[:12]}:"
    sep = "&" if "?" in REDIS_URL else "?"
    yield f"{REDIS_URL}{sep}prefix={prefix}"
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


def cheap_hasher() -> PasswordHasher:
    """argon2id with the smallest cost: these tests are about sharing, not hashing."""
    return PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


@pytest.fixture(autouse=True)
def _fast_password_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process accounts and link passwords hash quickly (servers keep the real cost)."""
    monkeypatch.setattr(security, "_hasher", cheap_hasher())
