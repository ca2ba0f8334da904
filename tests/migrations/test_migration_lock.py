"""Migrations run once whoever starts first, `docstore migrate --check` changes nothing, and
a database a newer docstore migrated is refused by every command with the reason."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from docstore import migrate
from docstore.db import make_engine
from tests.faults.helpers import docstore

FUTURE = "9999_from_a_newer_docstore"


def test_processes_starting_together_migrate_once(
    empty_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Four starts at the same instant on an empty database (each with its own engine, as
    separate processes have): all succeed, one of them migrates."""
    engines = [make_engine(empty_url) for _ in range(4)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(engines))

    def start(engine: object) -> None:
        try:
            barrier.wait(30)
            migrate.upgrade(engine)  # type: ignore[arg-type]
        except BaseException as exc:  # reported below
            errors.append(exc)

    caplog.set_level(logging.INFO, logger="docstore.migrate")
    threads = [threading.Thread(target=start, args=(e,)) for e in engines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    try:
        assert errors == []
        migrating = [r for r in caplog.records if "migrating the schema" in r.getMessage()]
        assert len(migrating) == 1
        assert migrate.status(engines[0]).state == "current"
    finally:
        for engine in engines:
            engine.dispose()


def test_check_changes_nothing(empty_url: str, tmp_path: Path) -> None:
    """`migrate --check` on an empty database: exit 1, and still no table; once migrated,
    exit 0."""
    env = {"DOCSTORE_DATABASE_URL": empty_url, "DOCSTORE_DATA_DIR": str(tmp_path / "data")}
    behind = docstore(env, "migrate", "--check", cwd=tmp_path)
    assert behind.returncode == 1, behind.stdout + behind.stderr
    assert "behind" in behind.stdout
    engine = make_engine(empty_url)
    try:
        assert inspect(engine).get_table_names() == []
        migrate.upgrade(engine)  # what `docstore migrate` runs (one command less to start)
    finally:
        engine.dispose()
    current = docstore(env, "migrate", "--check", cwd=tmp_path)
    assert current.returncode == 0, current.stdout + current.stderr
    assert "latest schema" in current.stdout


def test_a_newer_schema_is_refused(database_url: str, tmp_path: Path) -> None:
    """A database at a revision this code does not know: the upgrade refuses, `--check`
    exits 4, and `serve` and `worker` refuse to start, saying why."""
    engine = make_engine(database_url)
    try:
        with engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": FUTURE})
        with pytest.raises(migrate.SchemaTooNew, match="newer docstore"):
            migrate.upgrade(engine)
        assert migrate.status(engine).current == (FUTURE,)  # left as it was
    finally:
        engine.dispose()
    env = {"DOCSTORE_DATABASE_URL": database_url, "DOCSTORE_DATA_DIR": str(tmp_path / "data")}
    check = docstore(env, "migrate", "--check", cwd=tmp_path)
    assert check.returncode == 4, check.stdout + check.stderr
    assert FUTURE in check.stdout
    for command in (["serve", "--port", "9"], ["worker", "--once"]):
        out = docstore(env, *command, cwd=tmp_path)
        assert out.returncode == 1, out.stdout + out.stderr
        assert "refuses to start" in out.stderr and "newer docstore" in out.stderr, out.stderr
        assert "Traceback" not in out.stderr
