"""Fixtures for the webhook tests: cheap password hashes in-process (servers keep the real
cost), and the app with the SSRF guard on (the default) or off."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from docstore import security
from docstore.app import create_app
from tests.fixtures.app import BASE, Api, make_settings
from tests.sharing.conftest import cheap_hasher


@pytest.fixture(autouse=True)
def _fast_password_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(security, "_hasher", cheap_hasher())


@pytest.fixture
def guarded_api(tmp_path: Path, database_url: str) -> Iterator[Api]:
    """The app in-process with DOCSTORE_WEBHOOK_ALLOW_PRIVATE unset (the default)."""
    settings = make_settings(tmp_path, database_url, webhook_allow_private=False)
    with TestClient(create_app(settings), base_url=BASE, follow_redirects=False) as client:
        yield Api(client)
