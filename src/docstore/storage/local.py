"""Blobs on local disk, with signed URLs served by docstore itself (storage/endpoints.py).

Layout under `root`: `objects/<key>`, `multipart/<upload id>/<part number>` (plus
`meta.json` and an `<n>.md5` cache per part), and `tmp/` for everything being written,
so that a rename puts a complete file in place and a crash never shows a partial one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import re
import secrets
import shutil
import stat
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, BinaryIO
from urllib.parse import urlencode

from docstore.storage.base import (
    MAX_PART_NUMBER,
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
_UPLOAD_ID = re.compile(r"[A-Za-z0-9_-]{16,128}")
_META = "meta.json"


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
        or "\\" in key
        or any(ord(c) < 0x20 or c == "\x7f" for c in key)
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


class PartWriter:
    """One part being received: bytes go to a temp file while MD5 (and SHA-256) run.

    SHA-256 only runs when the part has a checksum to meet (`sha256=True`): it costs as
    much CPU as writing the bytes, and the whole file is hashed again at complete anyway.
    """

    def __init__(
        self, tmp_dir: Path, upload_dir: Path, part_number: int, *, sha256: bool = True
    ) -> None:
        self._tmp_dir = tmp_dir
        self._upload_dir = upload_dir
        self._part_number = part_number
        fd, name = tempfile.mkstemp(dir=tmp_dir, prefix="part-")
        self._path = Path(name)
        self._file: IO[bytes] = os.fdopen(fd, "wb", buffering=0)
        self._md5 = hashlib.md5(usedforsecurity=False)
        self._sha256 = hashlib.sha256() if sha256 else None
        self.size = 0

    def write(self, data: bytes) -> None:
        """Hash and write a block (call with large blocks: hashlib releases the GIL)."""
        self._md5.update(data)
        if self._sha256 is not None:
            self._sha256.update(data)
        view = memoryview(data)
        while view:
            written = self._file.write(view)
            view = view[written or 0 :]
        self.size += len(data)

    def commit(self, expected_sha256_b64: str | None = None) -> str:
        """Put the part in place unless it fails its checksum; returns its ETag (MD5 hex)."""
        try:
            if expected_sha256_b64 is not None:
                if self._sha256 is None:
                    raise ValueError("this part writer was opened without SHA-256")
                actual = base64.b64encode(self._sha256.digest()).decode()
                if actual != expected_sha256_b64.strip():
                    raise ChecksumMismatch("the part's bytes do not match its SHA-256")
            etag = self._md5.hexdigest()
            os.fsync(self._file.fileno())
            st = os.fstat(self._file.fileno())
            self._file.close()
            try:
                # The cache names the exact file it describes, so a stale one is never believed.
                _write_small(
                    self._tmp_dir,
                    self._upload_dir / f"{self._part_number}.md5",
                    f"{st.st_ino} {st.st_size} {st.st_mtime_ns} {etag}",
                )
                os.replace(self._path, self._upload_dir / str(self._part_number))
            except FileNotFoundError:
                raise KeyError("the upload was completed or aborted meanwhile") from None
            _fsync_dir(self._upload_dir)
            return etag
        except BaseException:
            self.discard()
            raise

    def discard(self) -> None:
        """Drop what was received; nothing of this part is kept."""
        self._file.close()
        self._path.unlink(missing_ok=True)


class LocalBlobStore:
    """Objects as files under `root`; part and download URLs signed with HMAC-SHA256."""

    kind = "local"

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
        self, key: str, content_type: str | None = None, *, checksum_sha256: bool = False
    ) -> str:
        """Make the upload's directory (built in tmp, then renamed: never half-made)."""
        check_key(key)
        upload_id = secrets.token_urlsafe(24)
        staging = Path(tempfile.mkdtemp(dir=self.root / "tmp", prefix="upload-"))
        meta = {"key": key, "content_type": content_type, "checksum_sha256": checksum_sha256}
        try:
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
        """Start receiving a part (`sha256`: its checksum will be checked); KeyError if unknown."""
        _check_part_number(part_number)
        upload_dir = self._upload_dir(upload_id)
        if not (upload_dir / _META).is_file():
            raise KeyError(upload_id)
        return PartWriter(self.root / "tmp", upload_dir, part_number, sha256=sha256)

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
        parts = []
        try:
            names = [n for n in os.listdir(upload_dir) if n.isdigit()]
        except FileNotFoundError:
            raise StorageError("no such multipart upload") from None
        for name in sorted(names, key=int):
            try:
                with (upload_dir / name).open("rb") as f:
                    st = os.fstat(f.fileno())
                    etag = self._cached_etag(upload_dir, name, st) or _md5_of(f)
            except FileNotFoundError:
                continue
            parts.append(PartInfo(int(name), etag, st.st_size))
        return parts

    def _cached_etag(self, upload_dir: Path, name: str, st: os.stat_result) -> str | None:
        """The part's MD5 as recorded when it arrived, if the record is about this very file."""
        try:
            ino, size, mtime_ns, etag = (upload_dir / f"{name}.md5").read_text().split()
        except (FileNotFoundError, ValueError):
            return None
        if (int(ino), int(size), int(mtime_ns)) != (st.st_ino, st.st_size, st.st_mtime_ns):
            return None
        return etag

    def complete_multipart(self, key: str, upload_id: str, parts: list[PartInfo]) -> str:
        """Join the parts in order into the object; returns the whole file's SHA-256 hex."""
        upload_dir, _ = self._upload_for(key, upload_id)
        ordered = sorted(parts, key=lambda p: p.part_number)
        if not ordered:
            raise StorageError("a multipart upload needs at least one part")
        if len({p.part_number for p in ordered}) != len(ordered):
            raise StorageError("a part number is listed twice")
        fd, name = tempfile.mkstemp(dir=self.root / "tmp", prefix="complete-")
        tmp = Path(name)
        sha256 = hashlib.sha256()
        buf = bytearray(BUFFER_SIZE)
        view = memoryview(buf)
        try:
            with os.fdopen(fd, "wb", buffering=0) as out:
                for index, part in enumerate(ordered):
                    last = index == len(ordered) - 1
                    self._append_part(upload_dir, part, last, out, sha256, view)
                os.fsync(out.fileno())
            self._place(tmp, key)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise StorageError(f"could not complete the upload: {exc.strerror}") from exc
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        self._remove_upload_dir(upload_dir)
        return sha256.hexdigest()

    def _append_part(
        self,
        upload_dir: Path,
        part: PartInfo,
        last: bool,
        out: IO[bytes],
        sha256: hashlib._Hash,
        view: memoryview,
    ) -> None:
        """Copy one part to `out` while hashing, after checking it is the part the client sent."""
        name = str(part.part_number)
        try:
            f = (upload_dir / name).open("rb", buffering=0)
        except FileNotFoundError:
            raise StorageError(f"part {part.part_number} was not uploaded") from None
        with f:
            st = os.fstat(f.fileno())
            if not last and st.st_size < MIN_PART_SIZE:
                raise StorageError(f"part {part.part_number} is smaller than {MIN_PART_SIZE} bytes")
            cached = self._cached_etag(upload_dir, name, st)
            md5 = None if cached else hashlib.md5(usedforsecurity=False)
            while n := f.readinto(view):
                chunk = view[:n]
                sha256.update(chunk)
                if md5 is not None:
                    md5.update(chunk)
                while chunk:
                    chunk = chunk[out.write(chunk) or 0 :]
            etag = cached or (md5.hexdigest() if md5 is not None else "")
        if normalize_etag(part.etag) != etag:
            raise StorageError(f"part {part.part_number} does not match its ETag")

    def abort_multipart(self, key: str, upload_id: str) -> None:
        """Remove the upload and its parts; an unknown upload is fine."""
        try:
            upload_dir, _ = self._upload_for(key, upload_id)
        except (StorageError, ValueError):
            return
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


def _md5_of(f: BinaryIO) -> str:
    md5 = hashlib.md5(usedforsecurity=False)
    while chunk := f.read(BUFFER_SIZE):
        md5.update(chunk)
    return md5.hexdigest()
