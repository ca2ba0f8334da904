"""One real server per database for the sync tests (module-scoped, see per_backend)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fixtures.server import ServerProcess, per_backend, shared_server


@pytest.fixture(scope="module", params=per_backend("sync"))
def sync_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    yield from shared_server(request, tmp_path_factory)
