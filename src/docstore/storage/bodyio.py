"""The receive path for large request bodies: `receive_into`, the one fast path.

Every large body docstore stores on local disk goes through `receive_into`: multipart parts
(`PUT /storage/parts/...`), `POST /files` and WebDAV `PUT`. It hands the bytes to a
`write(blocks)` callable of the caller's (which hashes them and writes them at their
place, e.g. `PartWriter.write`), in a worker thread, in large blocks:

- Under `docstore serve` (uvicorn + httptools, `docstore.server.BodyReader`) a body with a
  Content-Length of at least DIRECT_MIN bytes is read from the socket by a worker thread,
  `recv_into` one of two reused buffers of BLOCK bytes, and each block is hashed (hashlib
  releases the GIL) and written from its buffer on another thread while the next block
  arrives in the other: no ASGI messages, no bytes objects per chunk, the event loop free.
  Measured (bench/PROFILE.md, session 5): uvicorn delivering 1 GiB to an app that drops it
  cost 1.3 CPU-s, `recv_into` a 1 MiB buffer 0.2.
- Otherwise (chunked bodies, other servers, the test client) the ASGI messages are gathered
  on the loop into batches of BATCH bytes, and each batch is written by a worker thread
  while the loop gathers the next (`os.pwritev` of the chunks: no join, no copy).

Either way at most about two blocks of the body are in memory per request.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any

import anyio
import anyio.to_thread
from starlette.requests import ClientDisconnect, Request

from docstore.errors import BadRequest
from docstore.server import BODY_READER_KEY, BodyReader

Blocks = Sequence[bytes | memoryview]
# Read straight from the socket when at least this much of the body is left to come.
DIRECT_MIN = 1024 * 1024
# The direct reader's buffer: one hash update and one pwrite per block.
BLOCK = 4 * 1024 * 1024
# The ASGI path's batches (each ~256 KB message is kept as it came, written by pwritev).
BATCH = 4 * 1024 * 1024


async def receive_into(
    request: Request, write: Callable[[Blocks], None], *, read_timeout: float = 60.0
) -> int:
    """Receive the request's body into `write` (called in a worker thread with blocks in
    order); returns the body's size. ClientDisconnect if the body ends early, BadRequest if
    it stalls for `read_timeout` seconds; whatever `write` raises propagates (nothing more
    is written after it)."""
    reader = request.scope.get(BODY_READER_KEY)
    if isinstance(reader, BodyReader):
        # A short rest (a part's tail that came a little after its headers) stays on the
        # parser: the socket path closes the connection afterwards, for a gain only on
        # large bodies (DIRECT_MIN, which was documented here and never applied).
        taken = reader.take(DIRECT_MIN)
        if taken is not None:
            first, sock, left = taken
            got = [0]
            try:
                return await anyio.to_thread.run_sync(
                    _pump, sock, first, left, write, read_timeout, got
                )
            finally:
                sock.close()
                reader.finish(got[0])
    return await _receive_messages(request.stream(), write)


def _pump(
    sock: socket.socket,
    first: bytes,
    left: int,
    write: Callable[[Blocks], None],
    read_timeout: float,
    got: list[int],
) -> int:
    """In a worker thread: the body's first bytes, then `left` more from the socket
    (`got[0]`: how many were read, whatever happens).

    Two buffers: while one block is hashed and written (`write`, on a `helpers()` thread), the
    next is received into the other, so the socket, SHA-256 and the disk overlap instead of
    taking turns. Blocks are still written one at a time and in order."""
    total = len(first)
    got[0] = total
    if first:
        write([first])
    sock.settimeout(read_timeout)  # the socket stays non-blocking: poll() with a timeout
    size = min(BLOCK, left)
    buffers = [memoryview(bytearray(size)) for _ in range(2 if left > size else 1)]
    pending: Future[None] | None = None
    try:
        while left:
            buf = buffers[0][: min(size, left)]
            buffers.reverse()
            _fill(sock, buf, read_timeout, got)
            if pending is not None:
                pending.result()  # the other buffer's block is written: it is free next
            pending = helpers().submit(write, [buf])
            left -= len(buf)
            total += len(buf)
        if pending is not None:
            pending.result()
    finally:
        # Receiving failed while a block was being written: the caller discards the writer
        # next, so wait for that write to stop touching it first (its error, if any, is the
        # lesser one: the receive's propagates).
        if pending is not None:
            wait([pending])
    return total


def _fill(sock: socket.socket, buf: memoryview, read_timeout: float, got: list[int]) -> None:
    """Receive exactly len(buf) bytes into `buf`: BadRequest when the body stalls for
    `read_timeout` seconds, ClientDisconnect when it ends early."""
    filled = 0
    while filled < len(buf):
        try:
            n = sock.recv_into(buf[filled:])
        except TimeoutError:
            raise BadRequest(f"The request body stalled for over {read_timeout:g} s.") from None
        except OSError as exc:
            raise ClientDisconnect() from exc
        if n == 0:
            raise ClientDisconnect()
        filled += n
        got[0] += n


_POOLS: dict[str, ThreadPoolExecutor] = {}
_POOLS_LOCK = threading.Lock()
# Threads per pool (at most one task of each kind in flight per request being received, and
# anyio's worker threads bound those requests already).
HELPER_THREADS = 32


def _pool(kind: str) -> ThreadPoolExecutor:
    with _POOLS_LOCK:
        pool = _POOLS.get(kind)
        if pool is None:
            pool = _POOLS[kind] = ThreadPoolExecutor(HELPER_THREADS, thread_name_prefix=kind)
        return pool


def helpers() -> ThreadPoolExecutor:
    """The threads a body's blocks are written on beside its receiving thread. A write may
    wait for `hashers()` (never for this pool), so a full pool only queues."""
    return _pool("body-writer")


def hashers() -> ThreadPoolExecutor:
    """The threads that hash a block while a `helpers()` thread writes it. Their tasks wait
    for nothing: were they in the writers' pool, 32 writes waiting for their hashes could
    hold every thread and the hashes would never run."""
    return _pool("body-hasher")


async def _receive_messages(stream: AsyncIterator[bytes], write: Callable[[Blocks], None]) -> int:
    """The ASGI path: batches gathered on the loop, each written by a worker thread while
    the loop gathers the next (one batch in flight)."""
    total = 0
    batch: list[bytes] = []
    size = 0
    in_flight: asyncio.Future[Any] | None = None
    try:
        async for chunk in stream:
            if not chunk:
                continue
            batch.append(chunk)
            size += len(chunk)
            total += len(chunk)
            if size >= BATCH:
                if in_flight is not None:
                    await in_flight
                in_flight = asyncio.ensure_future(anyio.to_thread.run_sync(write, batch))
                batch, size = [], 0
        if in_flight is not None:
            await in_flight
        in_flight = None
        if batch:
            await anyio.to_thread.run_sync(write, batch)
    finally:
        # A failure or cancellation while a batch is being written: the caller discards the
        # writer next, so wait for that write to stop touching it first.
        if in_flight is not None and not in_flight.done():
            with anyio.CancelScope(shield=True):
                await asyncio.wait([in_flight])
        if in_flight is not None and in_flight.done() and not in_flight.cancelled():
            in_flight.exception()  # retrieved: the error that matters is the one raised here
    return total
