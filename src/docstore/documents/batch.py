"""POST /files/batch: many small files in one request, one transaction for all their rows.

A small file sent alone costs a request, two transactions and two fsyncs of the database
besides its own bytes (documents.endpoints.upload_file). Here a client sends a tree of them
as one `multipart/form-data` body, each part's filename a path relative to the target
folder. The costs that do not depend on the file are paid once per request:

- the body is parsed as it streams in (python-multipart's push parser, on the event loop),
  never held whole: a finished part waits in memory only until a group of them is written;
- each group of parts crosses to a worker thread once: their pending blob rows are committed
  in one transaction, then their bytes are hashed and written (each object fsynced, the
  objects' directory fsynced once per group: `store_group`);
- every document, version, quota charge, audit entry and change-feed row of the request is
  written in one final transaction, set-based (`record_parts`): all files are checked first
  (folder paths, names, the quota), then each kind of row is written for the files kept in
  one statement, so a file that fails (its name, its folder path, the quota, a name clash)
  fails alone and leaves nothing, and the statements do not grow with the number of files.

Starlette's own form parser (`request.form()`) was not used: it reads the whole body before
returning, each file into a SpooledTemporaryFile that stays in memory up to 1 MiB, so a body
of 1,000 files of 1 MiB would sit in memory whole (and larger files go through temporary
files on disk, written twice).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import unquote

import anyio.to_thread
from fastapi import Request
from pydantic import BaseModel
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from sqlalchemy import update
from sqlalchemy.orm import Session
from starlette.requests import ClientDisconnect

from docstore.context import Actor
from docstore.db import after_commit, utcnow
from docstore.documents import blobs, recording, service, write_group
from docstore.documents.models import Blob
from docstore.documents.receive import SHA256_HEX
from docstore.documents.schemas import DocumentOut
from docstore.errors import (
    BadRequest,
    ChecksumMismatch,
    DocstoreError,
    QuotaExceeded,
    TooLarge,
    ValidationFailed,
)
from docstore.folders import repository as folder_repo
from docstore.folders import service as folders
from docstore.folders.models import Folder
from docstore.names import clean_name
from docstore.schemas import Problem
from docstore.services import Services
from docstore.sharing.permissions import Level, get_folder_for
from docstore.users import repository as user_repo

log = logging.getLogger(__name__)

# Finished parts are written when this many bytes or files wait: bounds what a request
# holds in memory (besides the part still arriving) and how many crossings to a worker
# thread it costs.
GROUP_BYTES = 1024 * 1024
GROUP_FILES = 256
# Deepest relative path a part may name (folders created below the target).
MAX_DEPTH = 64
# Paths longer than this are refused before they are split (a 255-byte name per segment).
MAX_PATH_BYTES = 4096


class BatchItemOut(BaseModel):
    """One part's outcome: 201 with the new document, or the problem that stopped it."""

    path: str
    status: int
    document: DocumentOut | None = None
    error: Problem | None = None


class BatchOut(BaseModel):
    """Every part's outcome, in the order the parts were sent."""

    items: list[BatchItemOut]


@dataclass
class _Part:
    """A file part: its path, what it declared, its bytes while they wait to be written."""

    path: str
    mime_type: str | None = None
    expected: str | None = None
    chunks: list[bytes] = field(default_factory=list)
    size: int = 0
    segments: list[str] = field(default_factory=list)
    error: DocstoreError | None = None
    stored: service.StoredBytes | None = None
    document: DocumentOut | None = None

    def fail(self, error: DocstoreError) -> None:
        if self.error is None:
            self.error = error
        self.chunks = []

    def out(self) -> BatchItemOut:
        if self.error is not None:
            e = self.error
            problem = Problem(title=e.title, status=e.status, detail=e.detail, code=e.code)
            return BatchItemOut(path=self.path, status=e.status, error=problem)
        return BatchItemOut(path=self.path, status=201, document=self.document)


def split_path(raw: str) -> list[str]:
    """A part's relative path as cleaned names (folders..., file name), or 422.

    Each segment passes `clean_name` like any other name; an absolute path, an empty
    segment ('a//b', a trailing '/'), '.', '..' and a backslash (a Windows separator, which
    would mean something else here) are refused rather than guessed at.
    """
    if not raw:
        raise ValidationFailed("Each part needs a filename: the file's path in the folder.")
    if len(raw.encode("utf-8", "surrogatepass")) > MAX_PATH_BYTES:
        raise ValidationFailed(f"The path must be at most {MAX_PATH_BYTES} bytes.")
    if raw.startswith("/"):
        raise ValidationFailed("The path must be relative to the folder (no leading '/').")
    if "\\" in raw:
        raise ValidationFailed("The path must separate folders with '/', not '\\'.")
    segments = raw.split("/")
    if len(segments) > MAX_DEPTH:
        raise ValidationFailed(f"The path must be at most {MAX_DEPTH} levels deep.")
    if any(s == "" for s in segments):
        raise ValidationFailed("The path must not have empty segments.")
    return [clean_name(s) for s in segments]


class BodyReader:
    """python-multipart's callbacks: headers and bytes of each part into `_Part`s."""

    def __init__(self, max_files: int, max_file_bytes: int) -> None:
        self.max_files = max_files
        self.max_file_bytes = max_file_bytes
        self.parts: list[_Part] = []
        self.finished: list[_Part] = []  # ended, not yet written
        self.finished_bytes = 0
        self.ended = False
        self._part: _Part | None = None
        self._headers: list[tuple[bytes, bytes]] = []
        self._name = b""
        self._value = b""

    def callbacks(self) -> dict[str, Callable[..., None]]:
        return {
            "on_part_begin": self._begin,
            "on_part_data": self._data,
            "on_part_end": self._end,
            "on_header_field": self._header_field,
            "on_header_value": self._header_value,
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_end": self._done,
        }

    def _begin(self) -> None:
        if len(self.parts) >= self.max_files:
            raise TooLarge(f"A batch may hold at most {self.max_files} files.")
        self._headers = []
        self._part = _Part(path="")
        self.parts.append(self._part)

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._name += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _header_end(self) -> None:
        self._headers.append((self._name.lower(), self._value))
        self._name = self._value = b""

    def _headers_finished(self) -> None:
        part = self._part
        assert part is not None
        headers = dict(self._headers)
        disposition = headers.get(b"content-disposition", b"")
        _, options = parse_options_header(disposition)
        filename = options.get(b"filename")
        if filename is None:
            # A form field is no file with a path: the client is not speaking this API, and
            # the whole request is refused (nothing of it kept).
            raise ValidationFailed("Each part must be a file: a filename (its path) is needed.")
        part.path = filename.decode("utf-8", "replace")
        exact = headers.get(b"x-docstore-path")
        if exact is not None:
            # The filename parameter cannot carry every name: HTML5 form encoding (browsers,
            # httpx) turns '"', CR, LF (httpx: every control character) into %XX and leaves
            # '%' as it is, so 'a%22b' and 'a"b' arrive alike. This header is the path
            # percent-encoded as UTF-8 (RFC 3986), unambiguous; the filename is then only
            # shown.
            try:
                part.path = unquote(exact.decode("ascii"), errors="strict")
            except UnicodeDecodeError:
                part.fail(ValidationFailed("X-Docstore-Path must be percent-encoded UTF-8."))
                return
        elif b"\\" in disposition:
            # python-multipart turns a Windows path ('C:\\x\\y') into its last name:
            # refuse what the raw header shows rather than store a name it did not send.
            part.fail(ValidationFailed("The path must separate folders with '/', not '\\'."))
            return
        content_type = headers.get(b"content-type", b"").decode("latin-1").strip()
        if content_type and content_type.split(";")[0] != "application/octet-stream":
            part.mime_type = content_type[:255]
        try:
            part.segments = split_path(part.path)
            checksum = headers.get(b"x-checksum-sha256")
            if checksum is not None:
                value = checksum.decode("latin-1").strip().lower()
                if not SHA256_HEX.match(value):
                    raise ValidationFailed("X-Checksum-SHA256 must be 64 hexadecimal digits.")
                part.expected = value
        except DocstoreError as exc:
            part.fail(exc)

    def _data(self, data: bytes, start: int, end: int) -> None:
        part = self._part
        assert part is not None
        part.size += end - start
        if part.error is not None:
            return  # refused already: its bytes are read past, never kept
        if part.size > self.max_file_bytes:
            part.fail(TooLarge(f"A file in a batch may be at most {self.max_file_bytes} bytes."))
            return
        part.chunks.append(data[start:end])

    def _end(self) -> None:
        part = self._part
        assert part is not None
        self._part = None
        if part.error is None:
            self.finished.append(part)
            self.finished_bytes += part.size

    def _done(self) -> None:
        self.ended = True

    def take_finished(self) -> list[_Part]:
        group, self.finished, self.finished_bytes = self.finished, [], 0
        return group


def store_group(svc: Services, group: list[_Part]) -> None:
    """Hash a group of finished parts, register their pending blob rows (committed, one
    transaction), then write their bytes durably. Runs on a worker thread.

    A part whose bytes do not match its declared SHA-256 fails here and is never written.
    """
    for part in group:
        data = b"".join(part.chunks)
        part.chunks = [data]
        digest = hashlib.sha256(data).hexdigest()
        if part.expected is not None and digest != part.expected:
            part.fail(ChecksumMismatch())
        else:
            part.stored = service.StoredBytes(
                blob_id=0, key=blobs.new_key(), size=part.size, sha256=digest
            )
    keep = [p for p in group if p.stored is not None]
    if not keep:
        return
    with svc.database.transaction() as db:
        ids = blobs.add_pending_many(db, [(p.stored.key, p.size) for p in keep if p.stored])
    for part in keep:
        assert part.stored is not None
        part.stored.blob_id = ids[part.stored.key]
    items = [(p.stored.key, p.chunks[0]) for p in keep if p.stored is not None]
    try:
        put_objects(svc, items)
    finally:
        for part in keep:
            part.chunks = []


def put_objects(svc: Services, items: list[tuple[str, bytes]]) -> None:
    """Write a group's small objects durably (`write_group.put_objects`: one directory fsync
    on the local store, parallel PUTs on S3); the first error fails the group."""
    for error in write_group.put_objects(svc, items):
        if error is not None:
            raise error


def discard_stored(svc: Services, stored: list[service.StoredBytes]) -> None:
    """Delete objects no version will reference and retire their pending rows (best effort:
    the janitor removes what this misses)."""
    if not stored:
        return
    for s in stored:
        try:
            svc.store.delete(s.key)
        except Exception:  # the pending row stays for the janitor
            log.warning("batch: could not delete %s; the janitor will", s.key, exc_info=True)
    with svc.database.transaction() as db:
        db.execute(
            update(Blob)
            .where(Blob.id.in_([s.blob_id for s in stored]), Blob.state == "pending")
            .values(state="deleting", unreferenced_at=utcnow())
        )


@dataclass
class _Node:
    """A folder of the batch's tree: one that exists (`id`), or one to create for the files
    that end up in it. `names`: the names its files and subfolders take in this batch."""

    parent: _Node | None
    name: str
    id: int | None = None
    path: str = ""
    error: DocstoreError | None = None  # every file below fails with it
    folders: dict[str, int] = field(default_factory=dict)  # existing subfolders asked for
    documents: set[str] = field(default_factory=set)  # existing documents' names asked for
    names: dict[str, str] = field(default_factory=dict)  # name -> "file" | "folder"


class _Tree:
    """The folders below the target a batch's files go into: each existing one locked and
    asked once which of the batch's names it holds (`children_named`), the missing ones
    created only for the files that are kept. The folder locks serialise name checks among
    a folder's children, as `create_document` takes them, so the names seen stay true until
    the commit; they are taken parents first, in the order of the paths (two batches into
    one tree take them in the same order)."""

    def __init__(self, db: Session, actor: Actor, target: Folder) -> None:
        self.db = db
        self.actor = actor
        self.root = _Node(None, "", id=target.id, path=target.path)
        self.nodes: dict[tuple[str, ...], _Node] = {(): self.root}

    def resolve(self, parts: list[_Part]) -> None:
        """Find (and lock) every folder the parts name, in one pass down the tree."""
        wanted: dict[tuple[str, ...], set[str]] = {}
        for part in parts:
            segments = part.segments
            for depth in range(len(segments)):
                wanted.setdefault(tuple(segments[:depth]), set()).add(segments[depth])
        for key in sorted(wanted):
            node = self.nodes.get(key) or self._node(key)
            if node.id is None or node.error is not None:
                continue
            folder_repo.lock(self.db, node.id)
            node.folders, node.documents = folder_repo.children_named(self.db, node.id, wanted[key])

    def _node(self, key: tuple[str, ...]) -> _Node:
        parent = self.nodes[key[:-1]]
        node = self.nodes[key] = _Node(parent, key[-1], error=parent.error)
        if parent.id is None or node.error is not None:
            return node  # below a folder still to create (or failed): to create (or failed)
        if node.name in parent.documents:
            node.error = folders.name_conflict(node.name)  # a document is not a folder
        elif node.name in parent.folders:
            node.id = parent.folders[node.name]
            try:
                folder, _ = get_folder_for(self.db, self.actor, node.id, Level.EDIT)
                node.path = folder.path
            except DocstoreError as exc:
                node.error = exc
        return node

    def claims(self, part: _Part) -> list[tuple[_Node, str, str]]:
        """The names the part would take in the batch (its own, its new folders'), or
        raise what stops it: a name an existing item or an earlier kept file of the batch
        has (409), a folder it cannot write to. `take` them once the part is kept."""
        segments = part.segments
        claims: list[tuple[_Node, str, str]] = []
        for depth in range(len(segments) - 1):
            node = self.nodes[tuple(segments[: depth + 1])]
            if node.error is not None:
                raise node.error
            parent = node.parent
            assert parent is not None
            if node.id is None:  # to create: not where an earlier file of the batch is
                if parent.names.get(node.name, "folder") != "folder":
                    raise folders.name_conflict(node.name)
                claims.append((parent, node.name, "folder"))
        parent = self.nodes[tuple(segments[:-1])]
        name = segments[-1]
        if name in parent.documents or name in parent.folders or name in parent.names:
            raise folders.name_conflict(name)
        claims.append((parent, name, "file"))
        return claims

    @staticmethod
    def take(claims: list[tuple[_Node, str, str]]) -> None:
        for node, name, kind in claims:
            node.names[name] = kind

    def folder_of(self, part: _Part) -> _Node:
        """The part's folder, created now (with the missing ones above it) if it is new."""
        node = self.nodes[tuple(part.segments[:-1])]
        self._create(node)
        return node

    def _create(self, node: _Node) -> None:
        if node.id is not None:
            return
        assert node.parent is not None
        self._create(node.parent)
        # Its parent is locked (`resolve`) or was created in this transaction, and the name
        # was free there: `folders.create` takes the lock again (held already) and checks.
        folder = folders.create(self.db, self.actor, node.name, node.parent.id)
        node.id, node.path = folder.id, folder.path


def record_parts(
    db: Session, svc: Services, actor: Actor, folder_id: int, parts: list[_Part]
) -> None:
    """Every stored part's document in the caller's transaction, set-based
    (`recording.create_documents`): each check made for all files at once, then each kind of
    row written in one statement. A file that fails (its folder, its name, the quota) fails
    alone and leaves nothing; its bytes are deleted after the commit.

    Locks in the order of the other upload paths: the dedup targets, the folders, the
    owner's row."""
    target, _ = get_folder_for(db, actor, folder_id, Level.EDIT)
    stored = [p for p in parts if p.stored is not None]
    if not stored:
        return
    keys = {
        (p.stored.sha256, p.stored.size) for p in stored if p.stored and p.stored.sha256_verified
    }
    targets = blobs.find_dedup_targets(db, keys)
    tree = _Tree(db, actor, target)
    tree.resolve(stored)
    # In request order, as if each file were recorded alone: its folder path and name,
    # then the quota (the owner's row locked after the folders, as the other paths do).
    room = user_repo.room_for_update(db, target.owner_id)
    charged = 0
    for part in stored:
        try:
            claims = tree.claims(part)
            if part.size and part.size > room:  # as `charge`: an empty file always fits
                raise QuotaExceeded(user_repo.OVER_QUOTA)
        except DocstoreError as exc:
            part.fail(exc)
            continue
        tree.take(claims)
        room -= part.size
        charged += part.size
    user_repo.charge(db, target.owner_id, charged)
    kept = [p for p in stored if p.error is None]
    new: list[recording.NewDocument] = []
    for part in kept:
        assert part.stored is not None
        node = tree.folder_of(part)
        assert node.id is not None
        name = part.segments[-1]
        mime = service.guess_mime(name, part.mime_type)
        new.append(recording.NewDocument(node.id, node.path, name, mime, part.stored))
    created = recording.create_documents(db, actor, target.owner_id, new, targets)
    duplicates: list[service.StoredBytes] = []
    for part, (document, blob_id) in zip(kept, created, strict=True):
        assert part.stored is not None
        part.document = document
        if blob_id != part.stored.blob_id:
            duplicates.append(part.stored)
    failed = [p.stored for p in stored if p.error is not None and p.stored is not None]
    if duplicates:
        after_commit(db, lambda: _delete_duplicates(svc, duplicates))
    if failed:
        after_commit(db, lambda: discard_stored(svc, failed))


def _delete_duplicates(svc: Services, duplicates: list[service.StoredBytes]) -> None:
    for s in duplicates:
        blobs.delete_now(svc.store.delete, svc.database, s.blob_id, s.key)


def boundary(request: Request) -> bytes:
    content_type = request.headers.get("content-type", "")
    media, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if media != b"multipart/form-data" or not boundary:
        raise BadRequest("The body must be multipart/form-data with a boundary.")
    return boundary


def declared_length(request: Request, limit: int) -> None:
    raw = request.headers.get("content-length")
    if raw is not None and raw.isdigit() and int(raw) > limit:
        raise TooLarge(f"A batch may be at most {limit} bytes.")


def target_folder(db: Session, actor: Actor, folder_id: str | None) -> int:
    """The id of the folder a batch goes into, which the caller may edit (404 where they
    cannot see it); checked before the body is read and again when its rows are written."""
    target = folders.resolve_id(actor, folder_id)
    get_folder_for(db, actor, target, Level.EDIT)
    return target


async def receive(request: Request, svc: Services, boundary: bytes) -> BodyReader:
    """Parse the multipart body as it streams in, storing finished files a group at a time
    (`store_group`); on any error, what was stored is discarded and the error raised."""
    settings = svc.settings
    reader = BodyReader(settings.batch_max_files, settings.batch_max_file_bytes)
    parser = MultipartParser(boundary, reader.callbacks())  # type: ignore[arg-type]
    received = 0
    try:
        try:
            async for chunk in request.stream():
                received += len(chunk)
                if received > settings.batch_max_bytes:
                    raise TooLarge(f"A batch may be at most {settings.batch_max_bytes} bytes.")
                parser.write(chunk)
                if reader.finished_bytes >= GROUP_BYTES or len(reader.finished) >= GROUP_FILES:
                    await anyio.to_thread.run_sync(store_group, svc, reader.take_finished())
            parser.finalize()
        except ClientDisconnect as exc:
            raise BadRequest("The client went away before the body was complete.") from exc
        except MultipartParseError as exc:
            raise BadRequest(f"The multipart body is malformed: {exc}") from exc
        if not reader.ended:
            raise BadRequest("The multipart body ended before its closing boundary.")
        if reader.finished:
            await anyio.to_thread.run_sync(store_group, svc, reader.take_finished())
    except BaseException:
        stored = [p.stored for p in reader.parts if p.stored is not None]
        await anyio.to_thread.run_sync(discard_stored, svc, stored)
        raise
    return reader
