"""`/readyz`: 200 when the process takes new requests; 503 while it drains (SIGTERM), while
a process holds the migration lock (PostgreSQL), or while storage does not answer.
`/healthz` stays the liveness and dependency report."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import psycopg
import pytest

from docstore import migrate, server
from tests.fixtures.app import Api


@pytest.fixture
def not_draining() -> Iterator[None]:
    """The process-wide draining flag, cleared again after the test."""
    yield
    server.DRAINING.clear()


def test_ready_then_draining(api: Api, not_draining: None) -> None:
    r = api.client.get("/readyz")
    assert (r.status_code, r.json()) == (200, {"status": "ready"})
    server.DRAINING.set()  # what SIGTERM does (server.DrainingServer.handle_exit)
    r = api.client.get("/readyz")
    assert (r.status_code, r.json()) == (503, {"status": "draining"})
    assert api.client.get("/healthz").status_code == 200  # alive, still serving


def test_not_ready_while_storage_is_gone(api: Api, settings: object) -> None:
    blobs = settings.resolved_storage_url.removeprefix("file://")
    shutil.rmtree(blobs)
    r = api.client.get("/readyz")
    assert (r.status_code, r.json()) == (503, {"status": "unavailable", "storage": "unavailable"})


@pytest.mark.postgres
def test_not_ready_while_a_migration_runs(pg_url: str, tmp_path: object) -> None:
    from fastapi.testclient import TestClient

    from docstore.app import create_app
    from tests.fixtures.app import BASE, make_settings

    settings = make_settings(tmp_path, pg_url)  # type: ignore[arg-type]
    with TestClient(create_app(settings), base_url=BASE) as client:
        dsn = pg_url.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(dsn, autocommit=True) as other:  # another process migrating
            a, b = migrate.MIGRATION_LOCK
            other.execute("SELECT pg_advisory_lock(%s, %s)", (a, b))
            r = client.get("/readyz")
            assert (r.status_code, r.json()) == (503, {"status": "migrating"})
            other.execute("SELECT pg_advisory_unlock(%s, %s)", (a, b))
        assert client.get("/readyz").status_code == 200
