"""The sync state: `LOCAL_DIR/.docstore-sync/state.db` (SQLite).

For each synced path: the document and version it was last synced with, and the size, mtime,
inode and SHA-256 the local file had then; the synced folders; the feed cursor. This is the
*base* of the three-way reconcile (local vs state vs remote).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

STATE_DIR = ".docstore-sync"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY,
    doc_id TEXT NOT NULL,
    version_id TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    inode INTEGER NOT NULL,
    sha256 TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS folders (path TEXT PRIMARY KEY, folder_id TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


@dataclass(frozen=True)
class Entry:
    """A file as it was when last synced: the same bytes locally and on the server."""

    path: str
    doc_id: str
    version_id: str
    size: int
    mtime_ns: int
    inode: int
    sha256: str


class State:
    """The state database of one sync folder; every write commits at once (crash-safe)."""

    def __init__(self, local_dir: Path) -> None:
        self.dir = local_dir / STATE_DIR
        self.dir.mkdir(parents=True, exist_ok=True)
        # One connection shared by the transfer threads, which write under the engine's lock.
        self.db = sqlite3.connect(
            self.dir / "state.db", isolation_level=None, check_same_thread=False
        )
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(_SCHEMA)

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Many writes in one transaction (the initial sync of a large tree)."""
        self.db.execute("BEGIN")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # -- files ------------------------------------------------------------------------------

    def files(self) -> dict[str, Entry]:
        rows = self.db.execute(
            "SELECT path, doc_id, version_id, size, mtime_ns, inode, sha256 FROM files"
        )
        return {row[0]: Entry(*row) for row in rows}

    def put(self, entry: Entry) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                entry.path,
                entry.doc_id,
                entry.version_id,
                entry.size,
                entry.mtime_ns,
                entry.inode,
                entry.sha256,
            ),
        )

    def forget(self, path: str, *, doc_id: str | None = None) -> None:
        """Drop the row at `path` (only if it is `doc_id`'s, when given)."""
        if doc_id is None:
            self.db.execute("DELETE FROM files WHERE path = ?", (path,))
        else:
            self.db.execute("DELETE FROM files WHERE path = ? AND doc_id = ?", (path, doc_id))

    def drop_stale_rows(self) -> int:
        """One row per document: a document sits at one path on the server, so an older row
        naming it elsewhere is stale (left by a client before the fix of a move recorded
        without forgetting its old path). Such a row reads as "deleted locally" and would
        trash the document on the server; the newest row (highest rowid: INSERT OR REPLACE
        gives a new one) is the truth."""
        cur = self.db.execute(
            "DELETE FROM files WHERE rowid NOT IN (SELECT MAX(rowid) FROM files GROUP BY doc_id)"
        )
        return cur.rowcount

    # -- folders ----------------------------------------------------------------------------

    def folders(self) -> dict[str, str]:
        return dict(self.db.execute("SELECT path, folder_id FROM folders"))

    def put_folder(self, path: str, folder_id: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO folders VALUES (?, ?)", (path, folder_id))

    def forget_folders(self, paths: Iterable[str]) -> None:
        self.db.executemany("DELETE FROM folders WHERE path = ?", [(p,) for p in paths])

    # -- meta -------------------------------------------------------------------------------

    def get(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set(self, key: str, value: str | None) -> None:
        if value is None:
            self.db.execute("DELETE FROM meta WHERE key = ?", (key,))
        else:
            self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))


def state_summary(local_dir: Path) -> dict[str, Any]:
    """What `docstore sync status` shows, from the state alone (no network)."""
    state = State(local_dir.resolve())
    try:
        files = state.files()
        return {
            "local_dir": str(local_dir.resolve()),
            "server": state.get("server"),
            "remote_path": state.get("remote_path"),
            "files": len(files),
            "bytes": sum(e.size for e in files.values()),
            "folders": len(state.folders()),
            "cursor": state.get("cursor"),
            "last_sync": state.get("last_sync"),
            "last_result": state.get("last_result"),
        }
    finally:
        state.close()
