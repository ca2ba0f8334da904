"""Blobs on local disk, with signed URLs served by docstore itself (storage/endpoints.py).

Layout under `root`: `objects/<key>`; `multipart/<upload id>/` holding `meta.json`, the
upload's `data` file (part n at offset (n - 1) * part_size), a record `<n>` per part
received ("size etag") and lock files; `tmp/` for everything being written, so that a
rename puts a complete file in place and a crash never shows a partial one.

A part's ETag is opaque, as S3 documents ETags to be: a random token naming that one write
of the part, not the MD5 of its bytes. MD5 cost more than every other step of receiving a
part (bench/PROFILE.md, session 4), and nothing checked it: a file's integrity is its
SHA-256, declared at `POST /uploads` and checked at complete, and a part signed with
`x-amz-checksum-sha256` is checked as it arrives. Because each write gets a new token, the
ETag also tells complete whether a part was rewritten after the SHA-256 of the upload's
prefix was carried past it (`LocalBlobStore.hash_ahead`).

The store is in parts: `files` (keys, durable writes), `multipart` (the multipart
emulation) and `signing` (signed URLs); the objects are here.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from docstore.storage.base import MAX_PRESIGN_SECONDS, ObjectInfo, StorageError
from docstore.storage.local.files import Writeback, _fsync_dir, check_key
from docstore.storage.local.multipart import MultipartEmulation, _Prefix, _pwrite_all
from docstore.storage.local.signing import UrlSigning

# Threads `LocalBlobStore.put_many` writes and fsyncs a group's objects on.
PUT_MANY_THREADS = 8


class ObjectWriter:
    """One new object being written to a temp file (see `LocalBlobStore.open_writer`)."""

    def __init__(self, store: LocalBlobStore, key: str, fd: int, tmp: Path) -> None:
        self._store, self._key, self._fd, self._tmp = store, key, fd, tmp
        self._writeback = Writeback(fd)
        self.size = 0

    def write(self, blocks: Sequence[bytes | memoryview]) -> None:
        """Append the blocks (pwritev: no join); the disk starts on them early (Writeback)."""
        _pwrite_all(self._fd, blocks, self.size)
        size = sum(len(b) for b in blocks)
        self.size += size
        self._writeback.wrote(size)

    def commit(self) -> None:
        """fsync, then rename into place: the object appears whole or not at all."""
        try:
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = -1
            self._store._place(self._tmp, self._key)
        except OSError as exc:
            self.discard()
            raise StorageError(f"could not write the object: {exc.strerror}") from exc

    def discard(self) -> None:
        """Drop what was written (idempotent)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        self._tmp.unlink(missing_ok=True)


class LocalBlobStore(MultipartEmulation, UrlSigning):
    """Objects as files under `root`; part and download URLs signed with HMAC-SHA256."""

    kind = "local"
    max_presign_seconds = MAX_PRESIGN_SECONDS

    def __init__(
        self,
        root: Path,
        public_url: str,
        secret_key: bytes,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not secret_key:
            raise ValueError("the local blob store needs a secret key to sign URLs")
        self.root = Path(root)
        self.public_url = public_url.rstrip("/")
        self._secret_key = secret_key
        self._clock = clock
        # Parts of one upload written at once from several threads contend for the file's
        # inode lock, and the kernel spins for it: a sixth of the upload's CPU (perf, 4
        # parts in parallel). Writers of one upload take turns here instead (striped
        # locks: bounded, and uploads sharing one wait ~0.1 ms per 1 MiB write at most).
        self._write_locks = [threading.Lock() for _ in range(64)]
        self._prefixes: OrderedDict[str, _Prefix] = OrderedDict()
        self._prefixes_lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        for sub in ("objects", "multipart", "tmp"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)

    # -- paths ---------------------------------------------------------------------------

    def object_path(self, key: str) -> Path:
        """Where the object `key` lives (whether or not it exists)."""
        return self.root / "objects" / check_key(key)

    def _place(self, tmp: Path, key: str) -> None:
        """Rename a complete, fsynced temp file to the object `key`, durably."""
        target = self.object_path(key)
        objects = self.root / "objects"
        new_dirs = []
        parent = target.parent
        while parent != objects and not parent.exists():
            new_dirs.append(parent)
            parent = parent.parent
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, target)
        _fsync_dir(target.parent)
        for created in new_dirs:
            _fsync_dir(created.parent)

    # -- objects -------------------------------------------------------------------------

    def put_stream(self, key: str, chunks: Iterable[bytes]) -> int:
        """Write to a temp file, fsync, then rename into place; returns the size."""
        check_key(key)
        fd, name = tempfile.mkstemp(dir=self.root / "tmp", prefix="put-")
        tmp = Path(name)
        size = 0
        try:
            with os.fdopen(fd, "wb") as f:
                for chunk in chunks:
                    size += f.write(chunk)
                f.flush()
                os.fsync(f.fileno())
            self._place(tmp, key)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise StorageError(f"could not write the object: {exc.strerror}") from exc
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return size

    def open_writer(self, key: str) -> ObjectWriter:
        """A new object written in blocks by `ObjectWriter.write`, then `commit()`ed (fsync,
        rename into place) or `discard()`ed: the receive path of large bodies
        (`docstore.storage.bodyio.receive_into`). `put_stream` does the same for an
        iterable."""
        check_key(key)
        fd, name = tempfile.mkstemp(dir=self.root / "tmp", prefix="put-")
        return ObjectWriter(self, key, fd, Path(name))

    def put_many(self, objects: list[tuple[str, bytes]]) -> list[StorageError | None]:
        """Store several small objects durably with one fsync per directory, not per file:
        each is written to a temp file, fsynced and renamed into place (several at once,
        on a few threads: the disk merges their flushes, which one thread would wait for
        one by one), then each directory that gained a name is fsynced once
        (documents.write_group: the uploads of one group commit). Per object, None when
        it is stored, else its error; an object whose write failed is not left in place."""
        if len(objects) == 1:
            written = [self._put_placed(*objects[0])]
        else:
            written = list(self._put_pool().map(lambda kd: self._put_placed(*kd), objects))
        dirs: dict[Path, None] = {}
        for result in written:
            if not isinstance(result, StorageError):
                dirs.update(dict.fromkeys(result))
        try:
            for directory in dirs:
                _fsync_dir(directory)
        except OSError as exc:  # nothing placed is durable: none of them is stored
            for (key, _), result in zip(objects, written, strict=True):
                if not isinstance(result, StorageError):
                    self.object_path(key).unlink(missing_ok=True)
            error = StorageError(f"could not write the object: {exc.strerror}")
            return [error for _ in objects]
        return [r if isinstance(r, StorageError) else None for r in written]

    def _put_placed(self, key: str, data: bytes) -> list[Path] | StorageError:
        """`put_many`'s write of one object: temp file, fsync, rename into place. The
        directories whose entries changed (to fsync), or the error."""
        tmp: Path | None = None
        try:
            target = self.object_path(key)
            fd, name = tempfile.mkstemp(dir=self.root / "tmp", prefix="put-")
            tmp = Path(name)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            objects_dir = self.root / "objects"
            changed = [target.parent]
            parent = target.parent
            while parent != objects_dir and not parent.exists():
                changed.append(parent.parent)  # a new directory: its parent gains a name
                parent = parent.parent
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, target)
        except (OSError, ValueError) as exc:
            if tmp is not None:
                tmp.unlink(missing_ok=True)
            reason = exc.strerror if isinstance(exc, OSError) else str(exc)
            return StorageError(f"could not write the object: {reason}")
        return changed

    def _put_pool(self) -> ThreadPoolExecutor:
        """The few threads `put_many` writes on (built on first use)."""
        with self._prefixes_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(PUT_MANY_THREADS, thread_name_prefix="put-many")
            return self._pool

    def open(self, key: str) -> BinaryIO:
        """The object's bytes; KeyError when it is missing."""
        try:
            return self.object_path(key).open("rb")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise KeyError(key) from None

    def head(self, key: str) -> ObjectInfo | None:
        """Size and time of the object, or None."""
        try:
            st = self.object_path(key).stat()
        except (FileNotFoundError, NotADirectoryError):
            return None
        if not stat.S_ISREG(st.st_mode):
            return None
        return ObjectInfo(key, st.st_size, datetime.fromtimestamp(st.st_mtime, UTC))

    def delete(self, key: str) -> None:
        """Remove the object; a missing one is fine."""
        path = self.object_path(key)
        try:
            path.unlink()
        except (FileNotFoundError, NotADirectoryError):
            return
        _fsync_dir(path.parent)

    def iter_objects(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Every object whose key starts with `prefix`, in key order."""
        objects = self.root / "objects"
        start_dir, _, _ = prefix.rpartition("/")
        start = objects / start_dir if start_dir else objects
        if start_dir and (".." in start_dir or start_dir.startswith("/")):
            return
        yield from self._walk(objects, start, prefix)

    def _walk(self, objects: Path, directory: Path, prefix: str) -> Iterator[ObjectInfo]:
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except (FileNotFoundError, NotADirectoryError):
            return
        for entry in entries:
            key = Path(entry.path).relative_to(objects).as_posix()
            if entry.is_dir(follow_symlinks=False):
                if key.startswith(prefix) or prefix.startswith(key + "/"):
                    yield from self._walk(objects, Path(entry.path), prefix)
            elif entry.is_file(follow_symlinks=False) and key.startswith(prefix):
                try:
                    st = entry.stat(follow_symlinks=False)
                except FileNotFoundError:  # deleted while we walked
                    continue
                yield ObjectInfo(key, st.st_size, datetime.fromtimestamp(st.st_mtime, UTC))

    # -- housekeeping --------------------------------------------------------------------

    def purge_stale_tmp(self, older_than_seconds: float) -> int:
        """Delete temp files left by crashed writes; returns how many entries were removed."""
        cutoff = self._clock() - older_than_seconds
        removed = 0
        for entry in os.scandir(self.root / "tmp"):
            try:
                if entry.stat(follow_symlinks=False).st_mtime >= cutoff:
                    continue
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path)
                else:
                    os.unlink(entry.path)
                removed += 1
            except FileNotFoundError:
                continue
        return removed

    def housekeeping(self, older_than_seconds: float) -> int:
        """Temp files of crashed writes (`purge_stale_tmp`)."""
        return self.purge_stale_tmp(older_than_seconds)

    def check(self) -> bool:
        """Whether a file can be created (and removed) under root."""
        try:
            with tempfile.NamedTemporaryFile(dir=self.root / "tmp", prefix="check-"):
                pass
        except OSError:
            return False
        return True
