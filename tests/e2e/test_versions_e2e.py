"""The versions walk-through against the real `docstore serve` process."""

from __future__ import annotations

import httpx
import pytest

from tests.fixtures.app import Api
from tests.fixtures.server import ServerProcess
from tests.versions.test_versions import version_scenario

pytestmark = pytest.mark.e2e


def test_versions_walkthrough_against_real_server(server: ServerProcess) -> None:
    objects_dir = server.data_dir / "blobs" / "objects"

    def objects() -> int:
        return sum(1 for p in objects_dir.rglob("*") if p.is_file())

    with httpx.Client(base_url=server.url, timeout=60) as client:
        version_scenario(Api(client), objects)  # type: ignore[arg-type]
