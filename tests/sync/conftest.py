"""One real server per backend for all the sync tests (package-scoped, see per_backend):
SQLite with local storage, and PostgreSQL with S3 (a moto server)."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlencode

import boto3
import pytest

from tests.fixtures.s3 import unique_bucket
from tests.fixtures.server import ServerProcess, per_backend, shared_server


@pytest.fixture(scope="package", params=per_backend("sync"))
def sync_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    env: dict[str, str] = {}
    if request.param == "postgres":
        endpoint = request.getfixturevalue("moto_endpoint")
        bucket = unique_bucket()
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(
            Bucket=bucket
        )
        query = urlencode({"endpoint_url": endpoint, "region": "us-east-1"})
        env["DOCSTORE_STORAGE_URL"] = f"s3://{bucket}?{query}"
    yield from shared_server(request, tmp_path_factory, env)
