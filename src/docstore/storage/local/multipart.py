"""The local store's multipart emulation (S3's create/sign part/complete/abort)."""

from __future__ import annotations

import base64
import binascii
import fcntl
import hashlib
import json
import os
import re
import secrets
import shutil
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from docstore.storage.base import (
    MAX_PART_NUMBER,
    MAX_PART_SIZE,
    MIN_PART_SIZE,
    MultipartInfo,
    PartInfo,
    SignedRequest,
    StorageError,
    normalize_etag,
)
from docstore.storage.local.files import Writeback, _fsync_dir, _write_small, check_key
from docstore.storage.local.signing import _parse_expiry

BUFFER_SIZE = 1024 * 1024
_IOV_MAX = 1024  # blocks per pwritev call (Linux's IOV_MAX)
HASH_BLOCK = 4 * 1024 * 1024
COMPLETE_WAIT_SECONDS = 30
# Uploads whose prefix SHA-256 one process carries forward at once (oldest dropped first).
MAX_PREFIXES = 64
_UPLOAD_ID = re.compile(r"[A-Za-z0-9_-]{16,128}")
_META = "meta.json"
_DATA = "data"
_LOCK = "upload.lock"


class ChecksumMismatch(Exception):
    """The bytes received do not hash to the SHA-256 the part was signed with."""


def _check_upload_id(upload_id: str) -> str:
    if not _UPLOAD_ID.fullmatch(upload_id):
        raise ValueError("invalid upload id")
    return upload_id


def _check_part_number(part_number: int) -> int:
    if not 1 <= part_number <= MAX_PART_NUMBER:
        raise ValueError(f"part number must be 1..{MAX_PART_NUMBER}, not {part_number}")
    return part_number


class PartBusy(Exception):
    """Another request is writing this part, or the upload is being completed."""


class PartTooLarge(Exception):
    """More bytes than the part's place in the upload's file can hold."""


def _locked(path: Path, operation: int) -> int:
    """An fd of `path` (created if need be) holding a non-blocking flock; PartBusy if taken.

    flock locks belong to the open file, so they exclude threads of one process as well as
    other processes, and the kernel drops them when a crashed process's files close.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, operation | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise PartBusy("the part is being written by another request") from None
    except BaseException:
        os.close(fd)
        raise
    return fd


class PartWriter:
    """One part being received straight into its place in the upload's file.

    Part n owns bytes [(n-1) * part_size, n * part_size) of the upload's `data` file, so
    completing only hashes and renames it: the bytes are written once. When the part has
    a checksum to meet, SHA-256 runs on the way.

    Locks: every writer holds `upload.lock` shared (complete takes it exclusively) and
    `<n>.lock` exclusively, so two requests never interleave bytes in one place. The
    part's record `<n>` ("size etag") is removed before the first byte is written and put
    back, after fdatasync, with a new random ETag once the part is whole: a listed part's
    bytes are on disk, and bytes that changed after a record was read have a new ETag.
    """

    def __init__(
        self,
        tmp_dir: Path,
        upload_dir: Path,
        part_number: int,
        *,
        offset: int,
        limit: int,
        sha256: bool = True,
        write_lock: threading.Lock | None = None,
    ) -> None:
        self._tmp_dir = tmp_dir
        self._upload_dir = upload_dir
        self._part_number = part_number
        self._offset = offset  # where the part's place in the file starts
        self.limit = limit  # how many bytes the place holds
        self._write_lock = write_lock or threading.Lock()
        self._fds: list[int] = []
        try:
            self._fds.append(_locked(upload_dir / _LOCK, fcntl.LOCK_SH))
            self._fds.append(_locked(upload_dir / f"{part_number}.lock", fcntl.LOCK_EX))
            (upload_dir / str(part_number)).unlink(missing_ok=True)
            self._fd = os.open(upload_dir / _DATA, os.O_WRONLY | os.O_CLOEXEC)
            self._fds.append(self._fd)
        except (FileNotFoundError, NotADirectoryError):
            self._close()
            raise KeyError("the upload was completed or aborted") from None
        except BaseException:
            self._close()
            raise
        self._sha256 = hashlib.sha256() if sha256 else None
        self._writeback = Writeback(self._fd, offset)
        self.size = 0

    def write(self, blocks: bytes | Sequence[bytes | memoryview]) -> None:
        """Write a block, or blocks in order, at their place, hashing them if the part has a
        checksum to meet (called in a worker thread with large blocks: hashlib and pwritev
        release the GIL)."""
        if isinstance(blocks, bytes | bytearray | memoryview):
            blocks = [blocks]
        size = sum(len(b) for b in blocks)
        if self.size + size > self.limit:
            raise PartTooLarge(f"a part of this upload may hold at most {self.limit} bytes")
        if self._sha256 is not None:
            for block in blocks:
                self._sha256.update(block)
        with self._write_lock:
            _pwrite_all(self._fd, blocks, self._offset + self.size)
        self.size += size
        self._writeback.wrote(size)

    def commit(self, expected_sha256_b64: str | None = None) -> str:
        """Record the part unless it fails its checksum; returns its ETag (a new random
        token: see the module's docstring)."""
        try:
            if expected_sha256_b64 is not None:
                if self._sha256 is None:
                    raise ValueError("this part writer was opened without SHA-256")
                actual = base64.b64encode(self._sha256.digest()).decode()
                if actual != expected_sha256_b64.strip():
                    raise ChecksumMismatch("the part's bytes do not match its SHA-256")
            etag = secrets.token_hex(16)
            os.fdatasync(self._fd)
            try:
                _write_small(
                    self._tmp_dir, self._upload_dir / str(self._part_number), f"{self.size} {etag}"
                )
                _fsync_dir(self._upload_dir)
            except FileNotFoundError:
                raise KeyError("the upload was completed or aborted meanwhile") from None
            return etag
        finally:
            self._close()

    def discard(self) -> None:
        """Give up the part: it stays unlisted, and its place is free for a retry."""
        self._close()

    def _close(self) -> None:
        while self._fds:
            os.close(self._fds.pop())


class _Prefix:
    """The SHA-256 of an upload's first `size` bytes: its parts 1..n, each whole, with the
    ETag each part's record had when its bytes were hashed."""

    def __init__(self) -> None:
        self.hasher = hashlib.sha256()
        self.size = 0
        self.etags: list[str] = []
        self.taken = False  # complete has it: carry it no further
        self.lock = threading.Lock()


class MultipartEmulation:
    """S3's multipart upload on local disk: parts land in place in one file, complete
    hashes what is left and renames it into `objects/`."""

    if TYPE_CHECKING:
        root: Path
        public_url: str
        _clock: Callable[[], float]
        _write_locks: list[threading.Lock]
        _prefixes: OrderedDict[str, _Prefix]
        _prefixes_lock: threading.Lock

        def _place(self, tmp: Path, key: str) -> None: ...
        def _expiry(self, expires_in: int) -> int: ...
        def _sign(self, purpose: str, *fields: str | int | None) -> str: ...
        def _check_signature(self, expected: str, signature: str, expires_at: int) -> None: ...

    def _upload_dir(self, upload_id: str) -> Path:
        return self.root / "multipart" / _check_upload_id(upload_id)

    def _read_meta(self, upload_id: str) -> dict[str, object] | None:
        try:
            meta = json.loads((self._upload_dir(upload_id) / _META).read_text())
        except (FileNotFoundError, NotADirectoryError, ValueError):
            return None
        return meta if isinstance(meta, dict) else None

    def _upload_for(self, key: str, upload_id: str) -> tuple[Path, dict[str, object]]:
        """The upload's directory and metadata; StorageError if it is not an upload of `key`."""
        check_key(key)
        meta = self._read_meta(upload_id)
        if meta is None or meta.get("key") != key:
            raise StorageError("no such multipart upload")
        return self._upload_dir(upload_id), meta

    # -- multipart -----------------------------------------------------------------------

    def create_multipart(
        self,
        key: str,
        content_type: str | None = None,
        *,
        checksum_sha256: bool = False,
        part_size: int = MIN_PART_SIZE,
        size: int | None = None,
    ) -> str:
        """Make the upload's directory (built in tmp, then renamed: never half-made).

        Every part but the last must hold exactly `part_size` bytes: part n is written at
        offset (n - 1) * part_size of one file, which complete renames into place. With
        the declared `size`, no part may bring the file past it either.
        """
        check_key(key)
        if not MIN_PART_SIZE <= part_size <= MAX_PART_SIZE:
            raise ValueError(f"part_size must be {MIN_PART_SIZE}..{MAX_PART_SIZE} bytes")
        upload_id = secrets.token_urlsafe(24)
        staging = Path(tempfile.mkdtemp(dir=self.root / "tmp", prefix="upload-"))
        meta = {
            "key": key,
            "content_type": content_type,
            "checksum_sha256": checksum_sha256,
            "part_size": part_size,
            "size": size,
        }
        try:
            for name in (_DATA, _LOCK):
                (staging / name).touch(mode=0o600)
            _write_small(self.root / "tmp", staging / _META, json.dumps(meta))
            os.replace(staging, self._upload_dir(upload_id))
        except OSError as exc:
            shutil.rmtree(staging, ignore_errors=True)
            raise StorageError(f"could not start the upload: {exc.strerror}") from exc
        _fsync_dir(self.root / "multipart")
        return upload_id

    def upload_requires_checksum(self, upload_id: str) -> bool:
        """Whether the upload was created with `checksum_sha256` (KeyError if unknown)."""
        meta = self._read_meta(upload_id)
        if meta is None:
            raise KeyError(upload_id)
        return bool(meta.get("checksum_sha256"))

    def open_part_writer(
        self, upload_id: str, part_number: int, *, sha256: bool = True
    ) -> PartWriter:
        """Start receiving a part (`sha256`: its checksum will be checked).

        KeyError if the upload is unknown; PartBusy if the part (or the upload, being
        completed) is taken by another request.
        """
        _check_part_number(part_number)
        meta = self._read_meta(upload_id) or {}
        part_size, declared = meta.get("part_size"), meta.get("size")
        if not isinstance(part_size, int):
            raise KeyError(upload_id)
        offset = (part_number - 1) * part_size
        limit = part_size
        if isinstance(declared, int):  # the last part holds what is left of the file
            limit = max(0, min(part_size, declared - offset))
        return PartWriter(
            self.root / "tmp",
            self._upload_dir(upload_id),
            part_number,
            offset=offset,
            limit=limit,
            sha256=sha256,
            write_lock=self._write_locks[hash(upload_id) % len(self._write_locks)],
        )

    def sign_part(
        self,
        key: str,
        upload_id: str,
        part_number: int,
        expires_in: int,
        checksum_sha256_b64: str | None = None,
    ) -> SignedRequest:
        """A PUT URL to this server's /storage/parts endpoint, valid for `expires_in` s."""
        check_key(key)
        _check_upload_id(upload_id)
        _check_part_number(part_number)
        if checksum_sha256_b64 is not None:
            _check_sha256_b64(checksum_sha256_b64)
        expires = self._expiry(expires_in)
        signature = self._sign("part", upload_id, part_number, expires, checksum_sha256_b64)
        query: dict[str, str | int] = {"expires": expires}
        headers: dict[str, str] = {}
        if checksum_sha256_b64 is not None:
            query["checksum_sha256"] = checksum_sha256_b64
            headers["x-amz-checksum-sha256"] = checksum_sha256_b64
        query["signature"] = signature
        url = f"{self.public_url}/storage/parts/{upload_id}/{part_number}?{urlencode(query)}"
        return SignedRequest(url=url, method="PUT", headers=headers)

    def verify_part(
        self,
        upload_id: str,
        part_number: int,
        expires: str,
        checksum_sha256_b64: str | None,
        signature: str,
    ) -> None:
        """Check a part URL's signature, then its expiry; SignatureError when refused."""
        expires_at = _parse_expiry(expires)
        expected = self._sign("part", upload_id, part_number, expires_at, checksum_sha256_b64)
        self._check_signature(expected, signature, expires_at)

    def list_parts(self, key: str, upload_id: str) -> list[PartInfo]:
        """The parts received, in part-number order; StorageError for an unknown upload."""
        upload_dir, _ = self._upload_for(key, upload_id)
        try:
            names = [n for n in os.listdir(upload_dir) if n.isdigit()]
        except FileNotFoundError:
            raise StorageError("no such multipart upload") from None
        parts = []
        for name in sorted(names, key=int):
            record = _read_record(upload_dir, int(name))
            if record is not None:
                parts.append(PartInfo(int(name), record[1], record[0]))
        # A concurrent complete renames the directory away once it has joined the parts
        # (`_remove_upload_dir`): records read after that are missing, and a partial list
        # read as "the parts hold fewer bytes" (422 to one of eight racing completes). Still
        # here after the reads, every read was before the rename.
        if not upload_dir.is_dir():
            raise StorageError("no such multipart upload")
        return parts

    def complete_multipart(
        self, key: str, upload_id: str, parts: list[PartInfo], *, listed: bool = False
    ) -> str:
        """Check the parts, hash the upload's file and rename it into place.

        Returns the whole file's SHA-256 hex. The parts must be 1..n, each but the last
        exactly `part_size` bytes; parts beyond n are dropped. Waits (bounded) for parts
        still being written, which new ones cannot join meanwhile.
        """
        upload_dir, meta = self._upload_for(key, upload_id)
        part_size = meta.get("part_size")
        ordered = sorted(parts, key=lambda p: p.part_number)
        if not isinstance(part_size, int):
            raise StorageError("this upload was started by an older docstore; start again")
        if not ordered:
            raise StorageError("a multipart upload needs at least one part")
        if [p.part_number for p in ordered] != list(range(1, len(ordered) + 1)):
            raise StorageError("the parts must be numbered 1 to n, each once")
        lock = self._lock_upload(upload_dir)
        try:
            total = self._check_parts(upload_dir, ordered, part_size)
            data = upload_dir / _DATA
            # Only what hash_ahead has not already hashed is read here.
            sha256, start = self._take_prefix(upload_id, ordered)
            with data.open("r+b", buffering=0) as f:
                if os.fstat(f.fileno()).st_size != total:
                    os.ftruncate(f.fileno(), total)
                _hash_range(f.fileno(), sha256, start, total - start)
                os.fsync(f.fileno())
            self._place(data, key)
            self._remove_upload_dir(upload_dir)
        except OSError as exc:
            raise StorageError(f"could not complete the upload: {exc.strerror}") from exc
        finally:
            os.close(lock)
        return sha256.hexdigest()

    def hash_ahead(self, upload_id: str) -> None:
        """Carry the SHA-256 of the upload's prefix over the whole parts that now follow it.

        Run after a part lands (in the background of its PUT), so that complete hashes only
        what is left instead of the whole file after the last part. It reads the bytes back
        (from the page cache), so it also covers parts other processes received. A part
        counts when its record reads the same before and after its bytes are hashed: a
        writer removes the record before it touches a byte and puts back a new random ETag,
        so an unchanged record means unchanged bytes. Complete checks the ETags carried
        against the parts it joins: a part rewritten since is a mismatch, and the file is
        hashed from the start. Best effort: when another thread is carrying this upload
        forward, or the upload is gone, it does nothing.
        """
        meta = self._read_meta(upload_id)
        part_size = meta.get("part_size") if meta else None
        if not isinstance(part_size, int):
            return
        upload_dir = self._upload_dir(upload_id)
        with self._prefixes_lock:
            prefix = self._prefixes.get(upload_id)
            if prefix is None:
                prefix = self._prefixes[upload_id] = _Prefix()
                while len(self._prefixes) > MAX_PREFIXES:
                    self._prefixes.popitem(last=False)
        if not prefix.lock.acquire(blocking=False):
            return
        try:
            with (upload_dir / _DATA).open("rb", buffering=0) as f:
                while not prefix.taken:
                    number = len(prefix.etags) + 1
                    record = _read_record(upload_dir, number)
                    if record is None or record[0] != part_size:
                        return
                    before = prefix.hasher.copy()
                    read = _hash_range(f.fileno(), prefix.hasher, prefix.size, part_size)
                    if read != part_size or _read_record(upload_dir, number) != record:
                        prefix.hasher = before
                        return
                    prefix.etags.append(record[1])
                    prefix.size += part_size
        except OSError:
            return  # completed or aborted meanwhile: complete hashes what is missing
        finally:
            prefix.lock.release()

    def _take_prefix(self, upload_id: str, ordered: list[PartInfo]) -> tuple[Any, int]:
        """A SHA-256 to finish the upload's file with, and the offset to go on from: where
        hash_ahead got to if the parts it covered are the ones being joined (same ETags),
        else a new hash from 0."""
        with self._prefixes_lock:
            prefix = self._prefixes.pop(upload_id, None)
        if prefix is None:
            return hashlib.sha256(), 0
        with prefix.lock:  # waits for this process's hash_ahead of the upload, if running
            prefix.taken = True
            joined = [normalize_etag(p.etag) for p in ordered[: len(prefix.etags)]]
            if len(prefix.etags) <= len(ordered) and prefix.etags == joined:
                return prefix.hasher.copy(), prefix.size
        return hashlib.sha256(), 0

    def _lock_upload(self, upload_dir: Path) -> int:
        """The upload's lock held exclusively, once no part is being written (bounded wait)."""
        deadline = time.monotonic() + COMPLETE_WAIT_SECONDS
        while True:
            try:
                return _locked(upload_dir / _LOCK, fcntl.LOCK_EX)
            except FileNotFoundError:
                raise StorageError("no such multipart upload") from None
            except PartBusy:
                if time.monotonic() >= deadline:
                    raise StorageError("parts of this upload are still being received") from None
                time.sleep(0.05)

    def _check_parts(self, upload_dir: Path, ordered: list[PartInfo], part_size: int) -> int:
        """The object's size if every part is the one the client sent, at its full size."""
        total = 0
        for part in ordered:
            record = _read_record(upload_dir, part.part_number)
            if record is None:
                raise StorageError(f"part {part.part_number} was not uploaded")
            size, etag = record
            if normalize_etag(part.etag) != etag:
                raise StorageError(f"part {part.part_number} does not match its ETag")
            if part is not ordered[-1] and size != part_size:
                raise StorageError(
                    f"part {part.part_number} has {size} bytes; every part but the last "
                    f"must have {part_size}"
                )
            total += size
        for name in os.listdir(upload_dir):
            if name.isdigit() and int(name) > len(ordered):  # not in the object: forget it
                (upload_dir / name).unlink(missing_ok=True)
        return total

    def abort_multipart(self, key: str, upload_id: str) -> None:
        """Remove the upload and its parts; an unknown upload is fine."""
        try:
            upload_dir, _ = self._upload_for(key, upload_id)
        except (StorageError, ValueError):
            return
        with self._prefixes_lock:
            self._prefixes.pop(upload_id, None)
        self._remove_upload_dir(upload_dir)

    def _remove_upload_dir(self, upload_dir: Path) -> None:
        """Rename the upload away first, so a part arriving meanwhile fails instead of lingering."""
        doomed = self.root / "tmp" / f"gone-{upload_dir.name}-{secrets.token_hex(4)}"
        try:
            os.replace(upload_dir, doomed)
        except FileNotFoundError:
            return
        _fsync_dir(self.root / "multipart")
        shutil.rmtree(doomed, ignore_errors=True)

    def list_multipart_uploads(self, prefix: str = "") -> list[MultipartInfo]:
        """Unfinished uploads whose key starts with `prefix`; `initiated` is when it started."""
        uploads = []
        for entry in os.scandir(self.root / "multipart"):
            if not _UPLOAD_ID.fullmatch(entry.name):
                continue
            meta_path = Path(entry.path) / _META
            try:
                meta = json.loads(meta_path.read_text())
                # meta.json is written once at creation: its mtime is the start of the upload.
                started = meta_path.stat().st_mtime
            except (FileNotFoundError, NotADirectoryError, ValueError):
                continue
            key = meta.get("key") if isinstance(meta, dict) else None
            if isinstance(key, str) and key.startswith(prefix):
                initiated = datetime.fromtimestamp(started, UTC)
                uploads.append(MultipartInfo(key, entry.name, initiated))
        return sorted(uploads, key=lambda u: (u.key, u.upload_id))


def _pwrite_all(fd: int, blocks: Sequence[bytes | memoryview], offset: int) -> None:
    """Write the blocks one after another from `offset` (pwritev, resumed after a short
    write)."""
    views = [memoryview(b) for b in blocks if len(b)]
    while views:
        written = os.pwritev(fd, views[:_IOV_MAX], offset)
        offset += written
        while views and written >= len(views[0]):
            written -= len(views[0])
            views.pop(0)
        if written:
            views[0] = views[0][written:]


def _check_sha256_b64(value: str) -> None:
    try:
        ok = len(base64.b64decode(value, validate=True)) == 32
    except (binascii.Error, ValueError):
        ok = False
    if not ok:
        raise ValueError("checksum_sha256_b64 must be a base64 SHA-256 digest")


def _hash_range(fd: int, hasher: Any, start: int, length: int) -> int:
    """Feed `length` bytes of the file from `start` to `hasher`, 4 MiB a read (hashlib
    releases the GIL); returns how many there were (fewer at the end of the file)."""
    buf = memoryview(bytearray(min(HASH_BLOCK, max(length, 0))))
    done = 0
    while done < length:
        n = os.preadv(fd, [buf[: min(HASH_BLOCK, length - done)]], start + done)
        if n == 0:
            break
        hasher.update(buf[:n])
        done += n
    return done


def _read_record(upload_dir: Path, part_number: int) -> tuple[int, str] | None:
    """(size, ETag) of a part received whole, or None."""
    try:
        size, etag = (upload_dir / str(part_number)).read_text().split()
        return int(size), etag
    except (FileNotFoundError, ValueError):
        return None
