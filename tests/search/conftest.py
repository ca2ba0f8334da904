"""Fixtures for the search tests."""

from __future__ import annotations

import pytest

from docstore import security
from tests.sharing.conftest import cheap_hasher


@pytest.fixture(autouse=True)
def _fast_password_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process accounts hash quickly: these tests are about search."""
    monkeypatch.setattr(security, "_hasher", cheap_hasher())
