"""The site the kill -9 tests crash: one PostgreSQL database and one storage, served by
whichever server process is alive (the `site` fixture, tests/faults/conftest.py)."""

from __future__ import annotations

import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from tests.faults.helpers import MiB
from tests.faults.proof import Store
from tests.fixtures.server import ServerProcess, start_server

PART = 5 * MiB
ADMIN = ("admin@example.com", "admin pass word")


@dataclass
class Site:
    """One database and one storage, served by whichever server process is alive."""

    tmp: Path
    database_url: str
    env: dict[str, str]
    server: ServerProcess | None = None
    started: list[ServerProcess] = field(default_factory=list)

    def start(self) -> ServerProcess:
        self.server = start_server(self.tmp, self.database_url, self.env)
        self.started.append(self.server)
        return self.server

    def kill9(self) -> None:
        assert self.server is not None
        self.server.proc.send_signal(signal.SIGKILL)
        self.server.proc.wait(30)

    @property
    def dsn(self) -> str:
        """The database for psycopg (the test's own connections: row locks, watching)."""
        return self.database_url.replace("postgresql+psycopg://", "postgresql://")

    @property
    def store(self) -> Store:
        return Store(self.database_url, self.env["DOCSTORE_STORAGE_URL"], self.tmp)


def locked_waits(conn: psycopg.Connection[Any]) -> list[str]:
    """The statements of this database's sessions that wait on a lock."""
    rows = conn.execute(
        "SELECT query FROM pg_stat_activity WHERE datname = current_database()"
        " AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
    ).fetchall()
    return [str(row[0]) for row in rows]
