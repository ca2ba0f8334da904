"""Upload tests run the app in-process with 5 MiB parts, so a few MiB make several parts."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from docstore.config import Settings
from docstore.services import Services
from tests.fixtures.app import Api, make_settings
from tests.uploads.helpers import MiB, Uploader


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    """The parametrized database, local storage, the smallest part size S3 allows."""
    return make_settings(tmp_path, database_url, upload_part_size=5 * MiB)


@pytest.fixture
def new_uploader(api: Api) -> Callable[[], Uploader]:
    """Sign up a new user and hand back their uploader."""

    def make() -> Uploader:
        user = api.register()
        return Uploader(api.client, user.token, user_id=user.id)

    return make


@pytest.fixture
def svc(api: Api) -> Services:
    """The in-process app's services."""
    services: Services = api.client.app.state.services  # type: ignore[attr-defined]
    return services


@pytest.fixture
def raw() -> Iterator[httpx.Client]:
    """A plain HTTP client for signed URLs (parts go to the store, not the app)."""
    with httpx.Client(trust_env=False, timeout=60) as client:
        yield client
