"""A consistent copy of the database, and what that copy holds, read from the copy itself.

SQLite: the online backup API copies every page in one step under a read transaction, so
the copy is one moment of the database while the server keeps writing. PostgreSQL: a
REPEATABLE READ transaction exports its snapshot, `pg_dump -Fc --snapshot` dumps exactly
that snapshot, and the referenced objects and counts are read inside the same transaction.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from sqlalchemy.engine import make_url

from docstore.storage.inline import INLINE_PREFIX

# Every object a version points at: what a restore needs in storage. Objects of blobs no
# version references (pending uploads, GC's queue) are not needed and are not copied, and
# inline objects (storage.inline) are rows of the dump itself.
REFERENCED = (
    "SELECT storage_key, sha256, size_bytes FROM blobs"  # noqa: S608 (constants only)
    " WHERE id IN (SELECT blob_id FROM document_versions)"
    f" AND storage_key NOT LIKE '{INLINE_PREFIX}%' ORDER BY storage_key"
)
COUNTED = ("users", "folders", "documents", "document_versions", "blobs", "shares", "audit_log")
PACKAGE = "postgresql-client"


class ToolMissing(Exception):
    """A program the command needs (pg_dump, pg_restore) is not installed."""


@dataclass(frozen=True)
class ObjectRef:
    """An object the snapshot references: its key, content hash and size."""

    key: str
    sha256: str
    size: int


@dataclass
class Snapshot:
    """What was dumped: the file, the schema revision, row counts and referenced objects."""

    kind: str  # "sqlite" or "postgresql"
    path: Path
    revision: str | None
    counts: dict[str, int]
    objects: list[ObjectRef] = field(default_factory=list)


def backend(url: str) -> str:
    """ "sqlite" or "postgresql" for a database URL."""
    name = make_url(url).get_backend_name()
    if name not in ("sqlite", "postgresql"):
        raise ValueError(f"unsupported database {name!r}")
    return name


def sqlite_path(url: str) -> Path:
    """The file of a SQLite URL."""
    database = make_url(url).database
    if not database or database == ":memory:":
        raise ValueError("an in-memory SQLite database cannot be backed up or restored")
    return Path(database)


def libpq(url: str) -> tuple[str, dict[str, str]]:
    """A libpq connection string without the password, and the environment carrying it
    (so it never shows in the process list of pg_dump / pg_restore)."""
    sa = make_url(url).set(drivername="postgresql")
    params = conninfo_to_dict(sa.render_as_string(hide_password=False))
    env = dict(os.environ)
    password = params.pop("password", None)
    if password is not None:
        env["PGPASSWORD"] = str(password)
    return make_conninfo(**{k: str(v) for k, v in params.items()}), env


def tool(name: str) -> str:
    """The path of a PostgreSQL client program, or ToolMissing naming the package."""
    found = shutil.which(name)
    if found is None:
        raise ToolMissing(
            f"{name} is not installed: install the {PACKAGE} package "
            f"(Debian/Ubuntu: apt-get install {PACKAGE}), of the server's major version or newer"
        )
    return found


def _read(query: Callable[[str], list[Sequence[Any]]], snap: Snapshot) -> None:
    snap.revision = str(query("SELECT version_num FROM alembic_version")[0][0])
    for table in COUNTED:
        snap.counts[table] = int(query(f"SELECT count(*) FROM {table}")[0][0])  # noqa: S608 (fixed names)
    snap.objects = [ObjectRef(str(k), str(h), int(s)) for k, h, s in query(REFERENCED)]


def dump(url: str, target_dir: Path) -> Snapshot:
    """Dump the database at `url` into `target_dir`; the snapshot's contents described."""
    if backend(url) == "sqlite":
        return _dump_sqlite(sqlite_path(url), target_dir / "docstore.db")
    return _dump_postgres(url, target_dir / "docstore.dump")


def _dump_sqlite(source: Path, target: Path) -> Snapshot:
    if not source.exists():
        raise FileNotFoundError(f"no database at {source}")
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=30)
    dst = sqlite3.connect(target)
    try:
        src.backup(dst)  # pages=-1: one step, one read transaction: one moment of the source
        snap = Snapshot("sqlite", target, None, {})
        _read(lambda sql: list(dst.execute(sql).fetchall()), snap)
    finally:
        dst.close()
        src.close()
    return snap


def _dump_postgres(url: str, target: Path) -> Snapshot:
    pg_dump = tool("pg_dump")
    conninfo, env = libpq(url)
    snap = Snapshot("postgresql", target, None, {})
    with psycopg.connect(conninfo, password=env.get("PGPASSWORD")) as conn:
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        row = conn.execute("SELECT pg_export_snapshot()").fetchone()
        assert row is not None
        _read(lambda sql: list(conn.execute(sql).fetchall()), snap)
        # The snapshot stays importable while this transaction is open.
        done = subprocess.run(  # noqa: S603 (our arguments, no shell)
            [pg_dump, "-Fc", f"--snapshot={row[0]}", "--no-owner", "-f", str(target), conninfo],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        conn.rollback()
    if done.returncode != 0:
        raise RuntimeError(f"pg_dump failed: {done.stderr.strip()[-2000:]}")
    return snap


def is_empty(url: str) -> bool:
    """Whether the database holds no tables (a fresh place to restore into)."""
    if backend(url) == "sqlite":
        path = sqlite_path(url)
        if not path.exists() or path.stat().st_size == 0:
            return True
        with sqlite3.connect(path) as conn:
            rows = conn.execute("SELECT count(*) FROM sqlite_master WHERE type='table'").fetchone()
        return rows is None or rows[0] == 0
    conninfo, env = libpq(url)
    with psycopg.connect(conninfo, password=env.get("PGPASSWORD")) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()"
        ).fetchone()
    return row is None or row[0] == 0


def load(url: str, dump_file: Path, *, replace: bool) -> None:
    """Put a dump in place as the database at `url` (`replace`: over what is there)."""
    if backend(url) == "sqlite":
        target = sqlite_path(url)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.restoring")
        shutil.copyfile(dump_file, tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        for suffix in ("-wal", "-shm"):  # a replaced file's journal must not apply to ours
            target.with_name(target.name + suffix).unlink(missing_ok=True)
        os.replace(tmp, target)
        return
    pg_restore = tool("pg_restore")
    conninfo, env = libpq(url)
    args = [pg_restore, "--no-owner", "--no-privileges", "--exit-on-error", "-d", conninfo]
    if replace:
        args[1:1] = ["--clean", "--if-exists"]
    done = subprocess.run(  # noqa: S603 (our arguments, no shell)
        [*args, str(dump_file)], env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"pg_restore failed: {done.stderr.strip()[-2000:]}")
