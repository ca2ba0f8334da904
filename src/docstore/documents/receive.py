"""Receiving a raw request body into the blob store while hashing it, never holding it whole."""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import anyio.from_thread
import anyio.to_thread
from starlette.requests import ClientDisconnect, Request

from docstore.documents import blobs
from docstore.documents.service import StoredBytes
from docstore.errors import BadRequest, ChecksumMismatch, TooLarge, ValidationFailed
from docstore.services import Services
from docstore.storage.bodyio import Blocks, hashers, receive_into

SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


def parse_checksum(value: str | None) -> str | None:
    """A declared SHA-256 (hex, any case), or 422 when it is malformed."""
    if value is None:
        return None
    value = value.strip().lower()
    if not SHA256_HEX.match(value):
        raise ValidationFailed("X-Checksum-SHA256 must be 64 hexadecimal digits.")
    return value


def declared_length(request: Request, limit: int) -> int | None:
    """Content-Length if sent (413 when it is over `limit`, 400 when it is garbage)."""
    raw = request.headers.get("content-length")
    if raw is None:
        return None
    try:
        length = int(raw)
    except ValueError as exc:
        raise BadRequest("Content-Length is not a number.") from exc
    if length < 0:
        raise BadRequest("Content-Length is negative.")
    if length > limit:
        raise TooLarge(f"The body is over the {limit}-byte limit of this endpoint.")
    return length


# A body declared this small is read on the event loop and handed to the store whole:
# one thread hop instead of one per chunk.
SMALL_BODY = 256 * 1024
# A larger body crosses to the storage thread in batches of this size.
RECEIVE_BATCH = 1024 * 1024


def small_length(request: Request) -> int | None:
    """Content-Length when it is sent, well formed and at most SMALL_BODY: a body the
    small path (documents.write_group) takes in memory. None otherwise."""
    raw = request.headers.get("content-length", "")
    if not raw.isdigit() or len(raw) > 7:
        return None
    length = int(raw)
    return length if length <= SMALL_BODY else None


async def read_small_body(
    request: Request, limit: int, expected_sha256: str | None
) -> tuple[bytes, str]:
    """The whole body of a request whose Content-Length is small (`small_length`) and its
    SHA-256, read on the event loop: nothing is stored yet, so a failure leaves nothing
    to clean up. 400 when the client goes away, 413 over `limit`, 422 on a declared
    checksum that does not match."""
    try:
        data = await request.body()
    except ClientDisconnect as exc:
        raise BadRequest("The client went away before the body was complete.") from exc
    if len(data) > limit:
        raise TooLarge(f"The body is over the {limit}-byte limit of this endpoint.")
    digest = hashlib.sha256(data).hexdigest()
    if expected_sha256 is not None and digest != expected_sha256:
        raise ChecksumMismatch()
    return data, digest


async def receive_body(
    request: Request,
    svc: Services,
    limit: int,
    expected_sha256: str | None,
    pending: tuple[str, int] | None = None,
) -> StoredBytes:
    """Stream the body into a new object behind a pending blob row; hash it on the way.

    `pending` is a (key, blob id) the caller already registered and committed (see
    `blobs.add_pending`); without it a pending row is registered here first.
    On any failure the object and its pending row are removed (the janitor covers a crash).
    """
    size_hint = declared_length(request, limit) or 0
    if pending is None:
        key = blobs.new_key()
        blob_id = await anyio.to_thread.run_sync(
            blobs.register_pending, svc.database, key, size_hint
        )
    else:
        key, blob_id = pending
    opener = getattr(svc.store, "open_writer", None)
    if opener is not None and not 0 < size_hint <= SMALL_BODY:
        stored = await _receive_large(request, svc, limit, key, blob_id, opener)
        if expected_sha256 is not None and stored.sha256 != expected_sha256:
            await anyio.to_thread.run_sync(discard, svc, key, blob_id)
            raise ChecksumMismatch()
        return stored
    stream = request.stream().__aiter__()
    hasher = hashlib.sha256()
    total = 0
    early: list[bytes] | None = None
    if 0 < size_hint <= SMALL_BODY:
        async with _discard_on_failure(svc, key, blob_id):
            early = [chunk async for chunk in stream]

    async def next_batch() -> bytes:
        """The next chunks, gathered on the loop up to RECEIVE_BATCH bytes: one thread hop
        per batch instead of one per received chunk (~64 KiB). StopAsyncIteration at the
        end, as the stream itself."""
        batch: list[bytes] = []
        size = 0
        while size < RECEIVE_BATCH:
            try:
                chunk = await stream.__anext__()
            except StopAsyncIteration:
                if not batch:
                    raise
                break
            batch.append(chunk)
            size += len(chunk)
        return b"".join(batch)

    def chunks() -> Iterator[bytes]:
        nonlocal total
        ready = iter(early) if early is not None else None
        while True:
            try:
                chunk = next(ready) if ready is not None else anyio.from_thread.run(next_batch)
            except (StopAsyncIteration, StopIteration):
                return
            if not chunk:
                continue
            total += len(chunk)
            if total > limit:
                raise TooLarge(f"The body is over the {limit}-byte limit of this endpoint.")
            hasher.update(chunk)
            yield chunk

    async with _discard_on_failure(svc, key, blob_id):
        await anyio.to_thread.run_sync(svc.store.put_stream, key, chunks())
    digest = hasher.hexdigest()
    if expected_sha256 is not None and digest != expected_sha256:
        await anyio.to_thread.run_sync(discard, svc, key, blob_id)
        raise ChecksumMismatch()
    return StoredBytes(blob_id=blob_id, key=key, size=total, sha256=digest)


async def _receive_large(
    request: Request, svc: Services, limit: int, key: str, blob_id: int, opener: Any
) -> StoredBytes:
    """A large body into a store that takes blocks (the local one): `receive_into`, the
    large-body fast path, hashing and writing each block in a worker thread."""
    hasher = hashlib.sha256()
    async with _discard_on_failure(svc, key, blob_id):
        writer = await anyio.to_thread.run_sync(opener, key)
        total = 0

        def write(blocks: Blocks) -> None:
            """Hash the blocks on another thread while they are written (both only read
            them): SHA-256 and the copy into the page cache take about as long each."""
            nonlocal total
            total += sum(len(b) for b in blocks)
            if total > limit:
                raise TooLarge(f"The body is over the {limit}-byte limit of this endpoint.")
            hashing = hashers().submit(_update, hasher, blocks)
            try:
                writer.write(blocks)
            finally:
                hashing.result()

        try:
            timeout = svc.settings.body_read_timeout_seconds
            await receive_into(request, write, read_timeout=timeout)
            await anyio.to_thread.run_sync(writer.commit)
        except BaseException:
            await anyio.to_thread.run_sync(writer.discard)
            raise
    return StoredBytes(blob_id=blob_id, key=key, size=total, sha256=hasher.hexdigest())


def _update(hasher: Any, blocks: Blocks) -> None:
    for block in blocks:
        hasher.update(block)


@asynccontextmanager
async def _discard_on_failure(svc: Services, key: str, blob_id: int) -> AsyncIterator[None]:
    """Discard the bytes and their pending row if the block fails; a client that went
    away mid-body is a 400."""
    try:
        yield
    except ClientDisconnect as exc:
        await anyio.to_thread.run_sync(discard, svc, key, blob_id)
        raise BadRequest("The client went away before the body was complete.") from exc
    except BaseException:
        await anyio.to_thread.run_sync(discard, svc, key, blob_id)
        raise


def discard(svc: Services, key: str, blob_id: int) -> None:
    """Delete bytes that will not be used, and their pending row."""
    svc.store.delete(key)
    blobs.forget_pending(svc.database, blob_id)
