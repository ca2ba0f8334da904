"""Fixtures for the group tests: cheap password hashes in-process (servers keep the real
cost)."""

from __future__ import annotations

import pytest

from docstore import security
from tests.sharing.conftest import cheap_hasher


@pytest.fixture(autouse=True)
def _fast_password_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(security, "_hasher", cheap_hasher())
