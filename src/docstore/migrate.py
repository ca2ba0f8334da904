"""Run the Alembic migrations from inside the installed package, once, whoever starts first.

Every process (`docstore serve`, `docstore worker`, the maintenance commands) migrates on
start. When several start at once on one database (a deployment tool starts replicas
together), only one may run the migration: on PostgreSQL it holds an advisory lock on a
dedicated connection for the whole upgrade, on SQLite the write lock (`BEGIN IMMEDIATE`,
taken by the engine for every transaction). The others wait for the lock, then read the
revision again and find nothing to do. A database at a revision this code does not know
was migrated by a newer docstore: the process refuses to start (`SchemaTooNew`).
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from docstore.errors import DocstoreError

MIGRATIONS = Path(__file__).parent / "migrations"
# pg_advisory_lock(int4, int4): "docs" and 1 (the schema migration). pg_locks shows it as
# classid = MIGRATION_LOCK[0], objid = MIGRATION_LOCK[1], objsubid = 2.
MIGRATION_LOCK = (0x646F6373, 1)

log = logging.getLogger(__name__)

State = Literal["current", "behind", "newer"]


class SchemaTooNew(DocstoreError):
    """The database was migrated by a newer docstore than this one (every command refuses:
    the CLI reports it as an error, exit 1)."""

    status, code, title = 503, "schema_too_new", "The database's schema is newer than this code"


def alembic_config(url: str | None = None) -> Config:
    """An Alembic config pointing at the packaged migrations."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if url:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


@dataclass(frozen=True)
class Status:
    """Where the database's schema stands against this code's migrations."""

    current: tuple[str, ...]  # the database's revision(s); () for an empty database
    head: str  # the newest revision this code knows

    @property
    def state(self) -> State:
        """`current`, `behind` (migrations to run) or `newer` (a newer docstore's)."""
        if self.current == (self.head,):
            return "current"
        known = {rev.revision for rev in _scripts().walk_revisions()}
        if any(rev not in known for rev in self.current):
            return "newer"
        return "behind"

    def describe(self) -> str:
        """One line for people: where the database is and what to do."""
        at = ", ".join(self.current) or "empty (no schema)"
        if self.state == "current":
            return f"the database is at the latest schema ({self.head})"
        if self.state == "behind":
            return f"the database is behind: at {at}, this docstore needs {self.head}"
        return (
            f"the database's schema ({at}) is newer than this docstore's ({self.head}): it was "
            "migrated by a newer docstore. Run that version (or restore the backup taken "
            "before the upgrade); this one refuses to start rather than misread the data."
        )


@lru_cache(maxsize=1)
def _scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def head_revision() -> str:
    """The newest revision this code knows."""
    head = _scripts().get_current_head()
    assert head is not None
    return head


def status_of(conn: Connection) -> Status:
    """The schema's status as read on `conn` (no change made)."""
    current = tuple(MigrationContext.configure(conn).get_current_heads())
    return Status(current, head_revision())


def status(engine: Engine) -> Status:
    """The schema's status, read without changing anything (`docstore migrate --check`)."""
    with engine.connect() as conn:
        found = status_of(conn)
        conn.rollback()
    return found


def refuse_newer(engine: Engine) -> None:
    """Raise SchemaTooNew when the database was migrated by a newer docstore."""
    found = status(engine)
    if found.state == "newer":
        raise SchemaTooNew(found.describe())


def upgrade(engine: Engine) -> None:
    """Migrate the database behind `engine` to the latest revision, unless another process
    is doing so (then wait for it and find the work done). SchemaTooNew when the database
    is ahead of this code."""
    with engine.connect() as conn:
        postgres = conn.dialect.name == "postgresql"
        sqlite = conn.dialect.name == "sqlite"
        if sqlite:
            _foreign_keys(conn, on=False)
        if postgres:
            # A session-level lock on this connection alone: held across the upgrade's own
            # transaction, released below or when the connection dies with its process.
            conn.execute(text("SELECT pg_advisory_lock(:a, :b)"), _lock_params())
            conn.commit()
        try:
            # On SQLite the engine's BEGIN IMMEDIATE takes the write lock before the
            # revision is read, so a process that waited reads the migrated one.
            with conn.begin():
                found = status_of(conn)
                if found.state == "newer":
                    raise SchemaTooNew(found.describe())
                if found.state == "behind":
                    log.info(
                        "migrating the schema from %s to %s",
                        ", ".join(found.current) or "empty",
                        found.head,
                    )
                    cfg = alembic_config()
                    cfg.attributes["connection"] = conn
                    command.upgrade(cfg, "head")
                    if sqlite:
                        broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                        if broken:
                            raise RuntimeError(f"the migration broke foreign keys: {broken[:5]}")
        finally:
            if sqlite:
                _foreign_keys(conn, on=True)
            # A connection that broke took the lock with it; its error is the one to report.
            if postgres and not conn.closed and not conn.invalidated:
                with contextlib.suppress(SQLAlchemyError):
                    conn.execute(text("SELECT pg_advisory_unlock(:a, :b)"), _lock_params())
                    conn.commit()


def _lock_params() -> dict[str, int]:
    return {"a": MIGRATION_LOCK[0], "b": MIGRATION_LOCK[1]}


def migration_running(conn: Connection) -> bool:
    """Whether some process holds the migration lock now (PostgreSQL; False elsewhere)."""
    if conn.dialect.name != "postgresql":
        return False
    held = conn.scalar(
        text(
            "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted"
            " AND classid = :a AND objid = :b AND objsubid = 2 AND database = ("
            "SELECT oid FROM pg_database WHERE datname = current_database()))"
        ),
        _lock_params(),
    )
    return bool(held)


def _foreign_keys(conn: Connection, *, on: bool) -> None:
    """SQLite alters a table by copying it and dropping the original; with foreign keys on,
    that DROP cascades (migration 0004 rebuilding `users` emptied folders, documents,
    versions and shares). Foreign keys are off while migrating (a pragma that only takes
    effect outside a transaction: set on the driver connection before BEGIN) and checked
    with `PRAGMA foreign_key_check` before the commit instead."""
    driver = conn.connection.driver_connection
    assert driver is not None
    driver.execute(f"PRAGMA foreign_keys={'ON' if on else 'OFF'}")
