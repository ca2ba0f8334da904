"""Small objects kept in the database, in the transaction of the blob row that names them.

Why: a 4 KiB file stored as a file of its own costs a temp file, a write, an fsync, a
rename and a directory fsync, and threads to do them on: for rclone's many small files
that was the largest single cost of a WebDAV PUT (bench/PROFILE.md, sessions 15 and 16).
A small object that the server received whole in memory (the write group's small path,
`documents.write_group`) is instead a row of `inline_objects`, inserted in the same
transaction as its blob row: no file, no fsync of its own, and the bytes are exactly as
durable as the row that names them (and atomic with it).

Rules:
- Keys of inline objects start with `inline/` (`InlineObjects.new_key`): every call is
  routed by the key alone, with no lookup, and a key never moves between the two.
- The row belongs to its blob row: a foreign key on `blobs.storage_key` with ON DELETE
  CASCADE. It is written only with that row (`insert`, in its transaction) and deleted
  with it, so an inline object is never an orphan and `delete` has nothing to do.
- Reads (`open`, `head`) see committed rows only, on a connection of their own.
- Only the local store keeps objects inline: its downloads are served by docstore
  (`storage.endpoints`), which reads them through `open`. An S3 store's signed URLs go to
  S3, which could not serve a row.
- Backups carry inline objects in the database dump (`ops.dbdump.REFERENCED` lists the
  objects to copy and leaves them out).
"""

from __future__ import annotations

import heapq
import io
import uuid
from collections.abc import Iterable, Iterator
from typing import Any, BinaryIO, cast

from sqlalchemy import (
    ForeignKey,
    LargeBinary,
    String,
    Table,
    bindparam,
    column,
    delete,
    exists,
    func,
    insert,
    select,
    table,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from docstore.db import Base, Database
from docstore.storage.base import BlobStore, ObjectInfo, StorageError

INLINE_PREFIX = "inline/"


class InlineObject(Base):
    """The bytes of one small object, beside the blob row that names it."""

    __tablename__ = "inline_objects"

    storage_key: Mapped[str] = mapped_column(
        String(512), ForeignKey("blobs.storage_key", ondelete="CASCADE"), primary_key=True
    )
    data: Mapped[bytes] = mapped_column(LargeBinary)


# Built once: `open` and `head` run them for every read of an inline object.
_DATA = select(InlineObject.data).where(InlineObject.storage_key == bindparam("key"))
_SIZE = select(func.length(InlineObject.data)).where(InlineObject.storage_key == bindparam("key"))
LIST_PAGE = 1000
_LIST = (
    select(InlineObject.storage_key, func.length(InlineObject.data))
    .where(
        InlineObject.storage_key >= bindparam("low"),
        InlineObject.storage_key > bindparam("after"),
    )
    .order_by(InlineObject.storage_key)
    .limit(LIST_PAGE)
)
# `write_out`'s pages: keys with their bytes, at most 100 x 256 KiB held at once.
_WRITE_OUT = select(InlineObject.storage_key, InlineObject.data).limit(100)
# One statement per group, executemany: an object is stored only if its blob row exists.
_BLOBS = table("blobs", column("storage_key", String))
_INSERT_NAMED = insert(cast(Table, InlineObject.__table__)).from_select(
    ["storage_key", "data"],
    select(bindparam("key", type_=String), bindparam("data", type_=LargeBinary)).where(
        exists().where(_BLOBS.c.storage_key == bindparam("key"))
    ),
)


def is_inline(key: str) -> bool:
    """Whether `key` names an inline object."""
    return key.startswith(INLINE_PREFIX)


class InlineObjects:
    """A BlobStore: objects under `inline/` are rows of the database, every other key is
    the inner store's (which also answers everything else: signed URLs, multipart)."""

    def __init__(self, inner: BlobStore, database: Database, max_bytes: int) -> None:
        self.inner = inner
        self.database = database
        self.max_bytes = max_bytes
        self.kind = inner.kind
        self.max_presign_seconds = inner.max_presign_seconds

    def __getattr__(self, name: str) -> Any:
        # Called only for what this class lacks: the inner store's own calls (multipart,
        # signing, put_many, open_writer ...), which never see an inline key.
        return getattr(self.inner, name)

    # -- writing (in the blob row's transaction) ---------------------------------------

    def takes(self, size: int) -> bool:
        """Whether an object of `size` bytes received whole is kept inline (none with a
        limit of 0: inline objects are turned off, those stored before are still read)."""
        return self.max_bytes > 0 and size <= self.max_bytes

    @staticmethod
    def new_key() -> str:
        """A key for a new inline object (as `documents.blobs.new_key`, another prefix)."""
        return f"{INLINE_PREFIX}{uuid.uuid4().hex}"

    @staticmethod
    def insert(db: Session, objects: list[tuple[str, bytes]]) -> None:
        """Store, in `db`'s transaction, each object whose key a blob row there names; the
        others (content found already stored: the work kept no row for them) are dropped."""
        if objects:
            db.execute(_INSERT_NAMED, [{"key": k, "data": d} for k, d in objects])

    # -- the BlobStore protocol --------------------------------------------------------

    def put_stream(self, key: str, chunks: Iterable[bytes]) -> int:
        if is_inline(key):
            raise StorageError("an inline object is written with its blob row only")
        return self.inner.put_stream(key, chunks)

    def _read(self, statement: Any, key: str) -> Any:
        # The read engine: on SQLite it never takes the write lock, so a caller inside a
        # write transaction (a save that merges) can read here without waiting on itself.
        with self.database.read_engine.connect() as conn:
            return conn.execute(statement, {"key": key}).scalar()

    def open(self, key: str) -> BinaryIO:
        if not is_inline(key):
            return self.inner.open(key)
        data = self._read(_DATA, key)
        if data is None:
            raise KeyError(key)
        return io.BytesIO(data)

    def head(self, key: str) -> ObjectInfo | None:
        if not is_inline(key):
            return self.inner.head(key)
        size = self._read(_SIZE, key)
        return None if size is None else ObjectInfo(key, int(size))

    def delete(self, key: str) -> None:
        if not is_inline(key):
            self.inner.delete(key)
        # An inline object goes with its blob row (ON DELETE CASCADE), in that transaction.

    def iter_objects(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Every object whose key starts with `prefix`, files and rows, in key order."""
        files = self.inner.iter_objects(prefix)
        if not (INLINE_PREFIX.startswith(prefix) or prefix.startswith(INLINE_PREFIX)):
            return files  # e.g. the storage sweep's `blobs/`: no inline key is under it
        return heapq.merge(files, self._inline_objects(prefix), key=lambda info: info.key)

    def _inline_objects(self, prefix: str) -> Iterator[ObjectInfo]:
        """The inline objects under `prefix`, a page at a time (no read held open long)."""
        low, after = max(prefix, INLINE_PREFIX), ""
        while True:
            with self.database.read_engine.connect() as conn:
                page = conn.execute(_LIST, {"low": low, "after": after}).all()
            for key, size in page:
                if not key.startswith(prefix):
                    return  # keys in order: none further can start with it
                yield ObjectInfo(key, int(size))
            if len(page) < LIST_PAGE:
                return
            after = page[-1][0]

    def object_path(self, key: str) -> Any:
        """The inner store's file of `key`, or None for an inline object (read it with
        `open`)."""
        if is_inline(key):
            return None
        return self.inner.object_path(key)  # type: ignore[attr-defined]

    def check(self) -> bool:
        return self.inner.check()

    def housekeeping(self, older_than_seconds: float) -> int:
        return self.inner.housekeeping(older_than_seconds)


def write_out(database: Database, store: BlobStore) -> int:
    """Where the store keeps nothing inline (S3: an installation restored from a local one,
    or switched to S3), each inline object becomes an object of the store under its own
    key, and then its row goes; returns how many. Every key stays what it was, so the blob
    rows need no change. A no-op on a store that keeps objects inline."""
    if isinstance(store, InlineObjects):
        return 0
    moved = 0
    while True:
        with database.read_engine.connect() as conn:
            page = conn.execute(_WRITE_OUT).all()
        if not page:
            return moved
        for key, data in page:
            store.put_stream(key, iter((data,)))
        keys = [key for key, _ in page]
        with database.transaction() as db:
            db.execute(delete(InlineObject).where(InlineObject.storage_key.in_(keys)))
        moved += len(page)


def inline_store(store: BlobStore) -> InlineObjects | None:
    """The store's inline part, where it keeps small objects inline."""
    return store if isinstance(store, InlineObjects) else None
