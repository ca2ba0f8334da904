"""One local cluster (docstore.cluster: PostgreSQL, a private Redis, moto, 3 servers behind
nginx, 2 workers) shared by every test of tests/cluster, started once: its start is itself
the first test's subject (replicas starting together on an empty database)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from docstore.cluster import Cluster, nginx_binary
from tests.fixtures.databases import PG_ADMIN_DSN, PG_URL_BASE, _pg_admin
from tests.fixtures.proxy import TcpProxy
from tests.fixtures.server import DATABASE_URLS
from tests.fixtures.services import missing

SERVERS = 3
WORKERS = 2
# Short leases and polls so a dead worker's job is taken over within seconds; the blob GC
# runs every 2 s (the worker failover test), with a grace that still outlives the uploads.
ENV = {
    "DOCSTORE_JOB_LEASE_SECONDS": "3",
    "DOCSTORE_JOB_POLL_SECONDS": "1",
    "DOCSTORE_JOB_INTERVALS": '{"blobs.gc": 2}',
    "DOCSTORE_BLOB_GC_GRACE_SECONDS": "1",
    "DOCSTORE_UPLOAD_PART_SIZE": str(5 * 1024 * 1024),
    "DOCSTORE_SHUTDOWN_GRACE_SECONDS": "20",
    "DOCSTORE_TRANSACTION_GUARD": "1",
}


@dataclass
class Running:
    """The cluster, the PostgreSQL proxy every process reaches the database through (cut it
    to take the database away without touching the shared server) and the direct URL."""

    cluster: Cluster
    pg_proxy: TcpProxy
    database_url: str  # direct, for the test's own checks

    @property
    def url(self) -> str:
        """nginx: where the clients go."""
        assert self.cluster.state is not None
        return self.cluster.state.url


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """Start the cluster (servers and workers at the same instant, fresh database)."""
    if nginx_binary() is None:
        missing("nginx", "not installed (Debian: nginx-light)")
    if shutil.which("redis-server") is None:
        missing("redis-server", "not installed")
    try:
        _pg_admin().close()
    except Exception as exc:
        missing("PostgreSQL", str(exc).splitlines()[0])
    root: Path = tmp_path_factory.mktemp("cluster")
    proxy = TcpProxy("127.0.0.1", 5432)
    cluster = Cluster(root)
    through_proxy = PG_URL_BASE.replace("127.0.0.1:5432", proxy.address)
    try:
        state = cluster.up(
            servers=SERVERS,
            workers=WORKERS,
            private_redis=True,
            pg_admin_dsn=PG_ADMIN_DSN,
            pg_url_base=through_proxy,
            env=ENV,
        )
        direct = PG_URL_BASE + state.database
        DATABASE_URLS[state.url] = direct  # mailed links are read from it (register)
        yield Running(cluster, proxy, direct)
    finally:
        if cluster.state is not None:
            cluster.down()
        proxy.close()
