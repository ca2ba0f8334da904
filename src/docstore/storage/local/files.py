"""The local store's files: key validation and durable writes (fsync, then rename)."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import re
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

# A backslash or a control character: never in a key (a regex, not a generator over the
# characters, which yappi showed at ~80 calls per upload).
_BAD_KEY_CHAR = re.compile(r"[\x00-\x1f\x7f\\]")


# Early writeback: once this many bytes of a large file are written, the kernel is asked to
# start writing them to disk (not to wait for it), so the fsync that makes the file durable
# at its end waits for the last stretch only, not for the whole file. With much memory the
# kernel would otherwise keep a 1 GiB upload dirty until that fsync (dirty_background_ratio
# is 10 % of RAM) and the answer would wait ~2 s for the disk after the last byte arrived.
# PostgreSQL (checkpoint_flush_after) and RocksDB (bytes_per_sync) do the same, with the
# same call.
WRITEBACK_EVERY = 32 * 1024 * 1024
_SYNC_FILE_RANGE_WRITE = 2


def _sync_file_range() -> Callable[[int, int, int, int], int] | None:
    """Linux's sync_file_range(2) from libc, or None where there is none."""
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    call = getattr(libc, "sync_file_range", None)
    if call is not None:
        call.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
        call.restype = ctypes.c_int
    return call  # type: ignore[no-any-return]


_SYNC_RANGE = _sync_file_range()


class Writeback:
    """Starts the disk writes of a file being written in order, WRITEBACK_EVERY bytes at a
    time (`wrote` after each write). A hint: durability is still the caller's fsync, and
    where the call is missing or fails nothing changes but the fsync's length."""

    def __init__(self, fd: int, start: int = 0) -> None:
        self._fd = fd
        self._flushed = start  # where the range not yet handed to the kernel starts
        self._end = start

    def wrote(self, length: int) -> None:
        self._end += length
        if _SYNC_RANGE is None or self._end - self._flushed < WRITEBACK_EVERY:
            return
        _SYNC_RANGE(self._fd, self._flushed, self._end - self._flushed, _SYNC_FILE_RANGE_WRITE)
        self._flushed = self._end


def _fsync_dir(path: Path) -> None:
    """Make a rename or unlink in `path` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_small(tmp_dir: Path, path: Path, text: str) -> None:
    """Write a small file atomically (temp file, fsync, rename)."""
    fd, tmp = tempfile.mkstemp(dir=tmp_dir, prefix="small-")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def check_key(key: str) -> str:
    """The key if it names a file strictly inside the store; ValueError otherwise."""
    if (
        not key
        or ".." in key
        or key.startswith("/")
        or _BAD_KEY_CHAR.search(key)
        or any(part in ("", ".") for part in key.split("/"))
        or len(key.encode()) > 1024
    ):
        raise ValueError(f"invalid storage key: {key!r}")
    return key
