"""Moving bytes: hashed, parallel, retried and resumable uploads; verified downloads.

Files are never held in memory: they are read once to hash them (POST /uploads needs the
SHA-256 up front, and the SHA-256 of each part, which storage checks the part against) and
then streamed part by part, each part re-read from disk on a retry.
An unfinished multipart upload leaves a small state file in the user's cache directory,
keyed by the file's path, size, mtime and SHA-256, so that running the same upload again
sends only the parts storage does not have yet.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import mimetypes
import os
import random
import secrets
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import httpx

from docstore.client.errors import (
    ChecksumMismatch,
    ConnectionFailed,
    DocstoreError,
    Forbidden,
    NotFound,
    error_from_response,
)
from docstore.client.models import Document, Id, UploadPart, UploadSession, Version
from docstore.hashing import BlockHasher

if TYPE_CHECKING:
    from docstore.client.client import DocstoreClient, OnConflict

CHUNK = 1024 * 1024
# Above this size a file goes through POST /uploads (parallel parts, resumable); below it,
# one POST /files is cheaper. The server's simple-upload limit is 64 MiB by default.
MULTIPART_THRESHOLD = 16 * 1024 * 1024
PART_ATTEMPTS = 5
RETRY_DELAY = 0.5  # seconds before the first retry; doubled each time, capped at 8 s
RETRY_STATUSES = {408, 429, 500, 502, 503, 504}
# Multipart part size: the server's default, so the content hash (over blocks of the part
# size) matches other uploads of the same bytes and they deduplicate. Grown in whole MiB
# for files that would need more than S3's 10,000 parts.
PART_SIZE = 8 * 1024 * 1024
MAX_PARTS = 10_000

Progress = Callable[[int], None]


@dataclass
class UploadResult:
    """What an upload did: how many bytes and parts went over the wire."""

    document: Document
    method: Literal["simple", "multipart", "skipped"]
    size_bytes: int
    checksum_sha256: str
    bytes_sent: int = 0
    parts_total: int = 0
    parts_sent: list[int] = field(default_factory=list)
    parts_resumed: int = 0


def default_cache_dir() -> Path:
    """Where the client keeps resumable-upload state ($XDG_CACHE_HOME/docstore)."""
    if sys.platform == "win32":  # pragma: no cover - not a supported server platform
        base = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local"))
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "docstore"


def file_sha256(path: Path, progress: Progress | None = None) -> str:
    """The SHA-256 (hex) of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
            if progress:
                progress(len(chunk))
    return digest.hexdigest()


def part_size_for(size: int) -> int:
    """The part size this client uploads `size` bytes with (as the server plans it)."""
    grown = max(PART_SIZE, -(-size // MAX_PARTS))
    return -(-grown // CHUNK) * CHUNK


def file_hashes(
    path: Path, part_size: int, progress: Progress | None = None
) -> tuple[str, list[str]]:
    """The file's SHA-256 (hex) and each `part_size` part's SHA-256 (base64), in one read."""
    hasher = BlockHasher(part_size)
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            hasher.update(chunk)
            if progress:
                progress(len(chunk))
    return hasher.sha256_hex(), hasher.block_digests_b64()


def guess_mime(name: str) -> str | None:
    """A MIME type from the file name, if the platform knows one."""
    return mimetypes.guess_type(name)[0]


def _read_range(path: Path, offset: int, length: int, progress: Progress | None) -> Iterator[bytes]:
    """The bytes [offset, offset+length) of a file as 1 MiB chunks, reported to `progress`."""
    with path.open("rb") as f:
        f.seek(offset)
        remaining = length
        while remaining:
            chunk = f.read(min(CHUNK, remaining))
            if not chunk:
                raise OSError(f"{path} shrank while it was being uploaded")
            remaining -= len(chunk)
            if progress:
                progress(len(chunk))
            yield chunk


def upload_file(
    client: DocstoreClient,
    path: Path,
    *,
    folder_id: Id | None,
    name: str | None,
    document_id: Id | None,
    base_version_id: Id | None,
    on_conflict: OnConflict | None,
    checksum_sha256: str | None,
    mime_type: str | None,
    multipart_threshold: int,
    parallel: int,
    resume: bool,
    state_dir: Path | None,
    progress: Progress | None,
    on_part: Callable[[int, int], None] | None,
) -> UploadResult:
    """Upload `path`: one request when small, else a resumable parallel multipart upload."""
    name = name or path.name
    mime_type = mime_type or guess_mime(name)
    size = path.stat().st_size
    if size < multipart_threshold:
        sha = checksum_sha256 or file_sha256(path)
        body = _read_range(path, 0, size, progress)
        if document_id is not None:
            saved = client.save_version(
                document_id,
                body,
                base_version_id=base_version_id,
                on_conflict=on_conflict or "reject",
                checksum_sha256=sha,
                size=size,
            )
            doc = saved.document
        else:
            doc = client.upload_bytes(
                name, body, folder_id=folder_id, checksum_sha256=sha, mime_type=mime_type, size=size
            )
        return UploadResult(doc, "simple", size, sha, bytes_sent=size, parts_total=1)
    # One read for both hashes; a caller's SHA-256 is sent as given (the server judges it).
    part_size = part_size_for(size)
    computed, part_sums = file_hashes(path, part_size)
    sha = checksum_sha256 or computed
    target = {
        "filename": name,
        "folder_id": folder_id,
        "document_id": document_id,
        "base_version_id": base_version_id,
        "mime_type": mime_type,
    }
    job = MultipartJob(
        client,
        path,
        size,
        sha,
        target,
        part_size=part_size,
        part_checksums=part_sums,
        on_conflict=on_conflict,
        parallel=parallel,
        state_dir=(state_dir or default_cache_dir() / "uploads") if resume else None,
        progress=progress,
        on_part=on_part,
    )
    return job.run()


class MultipartJob:
    """One multipart upload from initiate (or a saved state) to complete."""

    def __init__(
        self,
        client: DocstoreClient,
        path: Path,
        size: int,
        sha: str,
        target: dict[str, Any],
        *,
        part_size: int | None = None,
        part_checksums: list[str] | None = None,
        on_conflict: OnConflict | None,
        parallel: int,
        state_dir: Path | None,
        progress: Progress | None,
        on_part: Callable[[int, int], None] | None,
    ) -> None:
        self.client = client
        self.path = path
        self.size = size
        self.sha = sha
        self.target = target
        self.part_size = part_size
        self.part_checksums = part_checksums
        self.on_conflict = on_conflict
        self.parallel = max(1, parallel)
        self.progress = progress
        self.on_part = on_part
        self.state_path = state_dir / f"{self._state_key()}.json" if state_dir else None
        self._lock = threading.Lock()
        self._failed = threading.Event()  # once a part gives up, no new part starts
        self.done: dict[int, str] = {}
        self.session: UploadSession | None = None
        self.sent: list[int] = []
        self.bytes_sent = 0

    def _state_key(self) -> str:
        stat = self.path.stat()
        ident = json.dumps(
            [
                str(self.path.resolve()),
                self.size,
                stat.st_mtime_ns,
                self.sha,
                self.client.base_url,
                {k: str(v) if v is not None else None for k, v in self.target.items()},
            ]
        )
        return hashlib.sha256(ident.encode()).hexdigest()[:32]

    # -- state file -------------------------------------------------------------------------

    def _load_state(self) -> bool:
        if self.state_path is None or not self.state_path.exists():
            return False
        try:
            state = json.loads(self.state_path.read_text())
            self.session = UploadSession.model_validate(state["session"])
            self.done = {int(n): str(etag) for n, etag in state["done"].items()}
        except (ValueError, KeyError, TypeError):
            self._forget_state()
            return False
        return True

    def _save_state(self) -> None:
        if self.state_path is None or self.session is None:
            return
        state = {
            "path": str(self.path),
            "size": self.size,
            "sha256": self.sha,
            "session": self.session.model_dump(mode="json"),
            "done": {str(n): etag for n, etag in sorted(self.done.items())},
        }
        self.state_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = self.state_path.with_suffix(f".{secrets.token_hex(4)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(state, f)
        os.replace(tmp, self.state_path)

    def _forget_state(self) -> None:
        if self.state_path is not None:
            self.state_path.unlink(missing_ok=True)

    # -- the upload -------------------------------------------------------------------------

    def run(self) -> UploadResult:
        """Resume from the saved state if there is one, else start; then send and complete."""
        resumed = self._load_state()
        if resumed:
            try:
                return self._send_and_complete(resumed=True)
            except (NotFound, Forbidden):
                # The saved session is gone or its URLs expired: start over, cleanly.
                self._abandon()
        self.session = self.client.create_upload(
            self.target["filename"],
            self.size,
            self.sha,
            folder_id=self.target["folder_id"],
            document_id=self.target["document_id"],
            base_version_id=self.target["base_version_id"],
            mime_type=self.target["mime_type"],
            part_size=self.part_size,
            part_checksums_sha256=self.part_checksums,
        )
        self.done = {}
        if self.session.skip_upload:
            doc = self.client.complete_upload(self.session.upload_id, on_conflict=self.on_conflict)
            return UploadResult(doc, "skipped", self.size, self.sha)
        self._save_state()
        return self._send_and_complete(resumed=False)

    def _abandon(self) -> None:
        if self.session is not None:
            # Already gone is fine: the server's janitor expires sessions anyway.
            with contextlib.suppress(DocstoreError):
                self.client.abort_upload(self.session.upload_id)
        self._forget_state()
        self.session = None
        self.done = {}

    def _send_and_complete(self, *, resumed: bool) -> UploadResult:
        assert self.session is not None
        session = self.session
        parts_resumed = len(self.done)
        missing = [p for p in session.parts if p.part_number not in self.done]
        if self.progress and self.done:
            self.progress(sum(self._part_length(n) for n in self.done))
        self._send_parts(missing)
        known = len(self.done) == len(session.parts)
        # After a resume the server lists the parts itself: it knows best what storage holds.
        etags = None if resumed or not known else list(self.done.items())
        doc = self.client.complete_upload(session.upload_id, etags, on_conflict=self.on_conflict)
        self._forget_state()
        return UploadResult(
            doc,
            "multipart",
            self.size,
            self.sha,
            bytes_sent=self.bytes_sent,
            parts_total=len(session.parts),
            parts_sent=sorted(self.sent),
            parts_resumed=parts_resumed,
        )

    def _part_length(self, part_number: int) -> int:
        assert self.session is not None
        start = (part_number - 1) * self.session.part_size
        return max(0, min(self.session.part_size, self.size - start))

    def _send_parts(self, parts: list[UploadPart]) -> None:
        if not parts:
            return
        pool = ThreadPoolExecutor(max_workers=min(self.parallel, len(parts)))
        try:
            futures = [pool.submit(self._send_part, part) for part in parts]
            finished, _ = wait(futures, return_when=FIRST_EXCEPTION)
            for future in finished:
                future.result()  # re-raise the first failure
            for future in futures:
                future.result()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _send_part(self, part: UploadPart) -> None:
        assert self.session is not None
        if self._failed.is_set():
            return
        try:
            self._send_part_with_retries(part)
        except BaseException:
            self._failed.set()
            raise

    def _send_part_with_retries(self, part: UploadPart) -> None:
        assert self.session is not None
        number = part.part_number
        offset = (number - 1) * self.session.part_size
        length = self._part_length(number)
        for attempt in range(1, PART_ATTEMPTS + 1):
            reported = 0

            def report(n: int) -> None:
                nonlocal reported
                reported += n
                if self.progress:
                    self.progress(n)

            try:
                etag = self._put(part, offset, length, report)
                break
            except (ConnectionFailed, _Retryable) as exc:
                if self.progress and reported:
                    self.progress(-reported)  # those bytes will be sent again
                if attempt == PART_ATTEMPTS:
                    raise ConnectionFailed(
                        f"part {number} failed after {attempt} attempts: {exc}"
                    ) from exc
                backoff = min(8.0, RETRY_DELAY * 2 ** (attempt - 1))
                time.sleep(backoff * (0.5 + random.random()))  # noqa: S311 - jitter, not security
        with self._lock:
            self.done[number] = etag
            self.sent.append(number)
            self.bytes_sent += length
            self._save_state()
            if self.on_part:
                self.on_part(number, len(self.done))

    def _put(self, part: UploadPart, offset: int, length: int, progress: Progress) -> str:
        """Send one part to its signed URL with the headers the server asked for."""
        headers = {**part.headers, "Content-Length": str(length)}
        try:
            # No Authorization header: the URL carries its own signature (it may be S3's).
            response = self.client.http.request(
                part.method or "PUT",
                part.url,
                content=_read_range(self.path, offset, length, progress),
                headers=headers,
            )
        except httpx.TransportError as exc:
            raise ConnectionFailed(f"sending part {part.part_number}: {exc}") from exc
        if response.status_code in RETRY_STATUSES:
            raise _Retryable(f"HTTP {response.status_code}")
        if response.status_code >= 300:
            raise error_from_response(response)
        etag = response.headers.get("etag")
        if not etag:
            raise DocstoreError(
                f"storage sent no ETag for part {part.part_number}", code="bad_response"
            )
        return etag


class _Retryable(Exception):
    """A transient answer from storage: the part is sent again."""


def fetch_verified(
    http: httpx.Client, url: str, dest: Path, version: Version, progress: Progress | None
) -> None:
    """Stream a signed URL into `dest` via a temporary file; keep it only if the SHA-256 matches."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f".{dest.name}.{secrets.token_hex(4)}.part"
    digest = hashlib.sha256()
    size = 0
    try:
        try:
            # The signed URL carries its own authority: no bearer token goes to storage.
            with http.stream("GET", url, follow_redirects=True) as response:
                if response.status_code != 200:
                    response.read()
                    raise error_from_response(response)
                with tmp.open("wb") as out:
                    for chunk in response.iter_bytes(CHUNK):
                        digest.update(chunk)
                        out.write(chunk)
                        size += len(chunk)
                        if progress:
                            progress(len(chunk))
        except httpx.TransportError as exc:
            raise ConnectionFailed(f"downloading: {exc}") from exc
        if digest.hexdigest() != version.checksum_sha256.lower() or size != version.size_bytes:
            raise ChecksumMismatch(
                f"downloaded bytes do not match version {version.version_number}'s SHA-256 "
                f"({size} bytes, sha256 {digest.hexdigest()}); nothing was written"
            )
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
