"""Fixtures for the sharing tests (Redis: `redis_url` in tests/fixtures/redis.py)."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher

from docstore import security


def cheap_hasher() -> PasswordHasher:
    """argon2id with the smallest cost: these tests are about sharing, not hashing."""
    return PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


@pytest.fixture(autouse=True)
def _fast_password_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process accounts and link passwords hash quickly (servers keep the real cost)."""
    monkeypatch.setattr(security, "_hasher", cheap_hasher())
