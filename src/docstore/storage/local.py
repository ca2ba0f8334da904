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
"""

from __future__ import annotations

import base64
import binascii
import fcntl
import hashlib
import hmac
import json
import os
import re
import secrets
import shutil
import stat
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlencode

from docstore.storage.base import (
    MAX_PART_NUMBER,
    MAX_PART_SIZE,
    MAX_PRESIGN_SECONDS,
    MIN_PART_SIZE,
    MultipartInfo,
    ObjectInfo,
    PartInfo,
    SignedRequest,
    StorageError,
    normalize_etag,
)
from docstore.storage.disposition import clip_filename, safe_content_type

BUFFER_SIZE = 1024 * 1024
HASH_BLOCK = 4 * 1024 * 1024
COMPLETE_WAIT_SECONDS = 30
# Uploads whose prefix SHA-256 one process carries forward at once (oldest dropped first).
MAX_PREFIXES = 64
_UPLOAD_ID = re.compile(r"[A-Za-z0-9_-]{16,128}")
# A backslash or a control character: never in a key (a regex, not a generator over the
# characters, which yappi showed at ~80 calls per upload).
_BAD_KEY_CHAR = re.compile(r"[\x00-\x1f\x7f\\]")
_META = "meta.json"
_DATA = "data"
_LOCK = "upload.lock"


class SignatureError(Exception):
    """A signed URL was tampered with, signed with another key, or has expired."""


class ChecksumMismatch(Exception):
    """The bytes received do not hash to the SHA-256 the part was signed with."""


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


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
        self.size = 0

    def write(self, data: bytes) -> None:
        """Write a block at its place, hashing it if the part has a checksum to meet
        (large blocks: hashlib and pwrite release the GIL)."""
        if self.size + len(data) > self.limit:
            raise PartTooLarge(f"a part of this upload may hold at most {self.limit} bytes")
        if self._sha256 is not None:
            self._sha256.update(data)
        view = memoryview(data)
        offset = self._offset + self.size
        with self._write_lock:
            while view:
                written = os.pwrite(self._fd, view, offset)
                view, offset = view[written:], offset + written
        self.size += len(data)

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


class LocalBlobStore:
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
        for sub in ("objects", "multipart", "tmp"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)

    # -- paths ---------------------------------------------------------------------------

    def object_path(self, key: str) -> Path:
        """Where the object `key` lives (whether or not it exists)."""
        return self.root / "objects" / check_key(key)

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
        return parts

    def complete_multipart(self, key: str, upload_id: str, parts: list[PartInfo]) -> str:
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

    # -- downloads -----------------------------------------------------------------------

    def sign_download(
        self,
        key: str,
        expires_in: int,
        filename: str,
        content_type: str | None = None,
    ) -> str:
        """A GET URL to this server's /storage/objects endpoint, valid for `expires_in` s."""
        check_key(key)
        filename = clip_filename(filename)
        content_type = safe_content_type(content_type)
        expires = self._expiry(expires_in)
        signature = self._sign("download", key, expires, filename, content_type)
        query = {
            "key": key,
            "expires": expires,
            "filename": filename,
            "content_type": content_type,
            "signature": signature,
        }
        return f"{self.public_url}/storage/objects?{urlencode(query)}"

    def verify_download(
        self, key: str, expires: str, filename: str, content_type: str, signature: str
    ) -> None:
        """Check a download URL's signature, then its expiry; SignatureError when refused."""
        expires_at = _parse_expiry(expires)
        expected = self._sign("download", key, expires_at, filename, content_type)
        self._check_signature(expected, signature, expires_at)

    # -- signing -------------------------------------------------------------------------

    def _expiry(self, expires_in: int) -> int:
        if expires_in <= 0:
            raise ValueError("expires_in must be positive")
        return int(self._clock()) + int(expires_in)

    def _sign(self, purpose: str, *fields: str | int | None) -> str:
        """HMAC-SHA256 over the purpose and fields, JSON-encoded so no two inputs collide."""
        message = json.dumps([purpose, *fields], ensure_ascii=True, separators=(",", ":"))
        return _b64url(hmac.new(self._secret_key, message.encode(), hashlib.sha256).digest())

    def _check_signature(self, expected: str, signature: str, expires_at: int) -> None:
        if not hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace")):
            raise SignatureError("the URL's signature is invalid")
        if self._clock() > expires_at:
            raise SignatureError("the URL has expired")

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


def _check_sha256_b64(value: str) -> None:
    try:
        ok = len(base64.b64decode(value, validate=True)) == 32
    except (binascii.Error, ValueError):
        ok = False
    if not ok:
        raise ValueError("checksum_sha256_b64 must be a base64 SHA-256 digest")


def _parse_expiry(expires: str) -> int:
    try:
        return int(expires)
    except ValueError:
        raise SignatureError("the URL's signature is invalid") from None


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
