"""The HTTP protocol `docstore serve` runs: uvicorn's httptools protocol with the limits it
lacks. httptools buffers a request head of any size and uvicorn never times out a head
that arrives slowly, so a client could hold memory and connections for ever. Here a head
over DOCSTORE_MAX_HEADER_BYTES gets 431, and one not complete within
DOCSTORE_HEADER_TIMEOUT_SECONDS of its first byte (or of the connection) is closed.
Also the server that runs it, which drains on SIGTERM (`DrainingServer`)."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import socket
import struct
import sys
import threading
from types import FrameType
from typing import Any, cast

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from docstore.config import get_settings

M_ARENA_MAX = -8  # glibc <malloc.h>
MALLOC_ARENAS = 2


def limit_malloc_arenas() -> None:
    """Cap glibc's malloc arenas at 2 for this process and the workers it starts, unless
    MALLOC_ARENA_MAX is set.

    glibc gives threads that allocate at the same time arenas of their own, up to 8 per
    core, and keeps the memory each one grew to. With the request thread pool (40 threads)
    that cost ~9 MiB of RSS a minute under bench/soak.py, while no Python object grew
    (tracemalloc); with 2 arenas RSS stayed flat at the same request rate.
    """
    if "MALLOC_ARENA_MAX" in os.environ or not sys.platform.startswith("linux"):
        return
    os.environ["MALLOC_ARENA_MAX"] = str(MALLOC_ARENAS)  # read at start-up by worker processes
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to tune
        ctypes.CDLL("libc.so.6").mallopt(M_ARENA_MAX, MALLOC_ARENAS)


# Set in a request's scope when its target carried a fragment (see on_headers_complete).
FRAGMENT_KEY = "docstore.fragment"
_431 = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"content-type: text/plain; charset=utf-8\r\nconnection: close\r\n"
    b"content-length: 31\r\n\r\nRequest header fields too large"
)


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """HttpToolsProtocol with a size limit and a deadline on each request head."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        settings = get_settings()
        self.max_header_bytes = settings.max_header_bytes
        self.header_timeout = settings.header_timeout_seconds
        self.head_bytes = 0
        self.in_head = True
        self.head_timer: asyncio.TimerHandle | None = None
        self.body_reader: BodyReader | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.in_head and self.head_timer is None:
            self._arm()
        super().data_received(data)
        if not self.in_head or self.transport.is_closing():
            return
        self.head_bytes += len(data)
        if self.head_bytes > self.max_header_bytes:
            self._disarm()
            self.transport.write(_431)
            self.transport.close()

    def on_headers_complete(self) -> None:
        self.in_head = False
        self.head_bytes = 0
        self._disarm()
        fragment = b"#" in self.url
        super().on_headers_complete()
        self.cycle.transport = cast(
            asyncio.Transport, HeadHeldBack(self.transport, self.loop, self.cycle)
        )
        self.body_reader = BodyReader(self, self.cycle)
        cast(dict[str, Any], self.scope)[BODY_READER_KEY] = self.body_reader
        if fragment:
            # A request target never carries a fragment (RFC 9112 section 3.2); httptools
            # drops it, so the app could act on the URL without it (a WebDAV DELETE of
            # "coll/#frag" removing "coll/"). The scope says so (the request has not
            # started yet: its task runs on the next turn of the loop).
            cast(dict[str, Any], self.scope)[FRAGMENT_KEY] = True

    def on_body(self, body: bytes) -> None:
        if self.body_reader is not None:
            self.body_reader.parsed += len(body)
        super().on_body(body)

    def on_response_complete(self) -> None:
        self.in_head = True
        super().on_response_complete()

    def _arm(self) -> None:
        self._disarm()
        self.head_timer = self.loop.call_later(self.header_timeout, self._head_timed_out)

    def _disarm(self) -> None:
        if self.head_timer is not None:
            self.head_timer.cancel()
            self.head_timer = None

    def _head_timed_out(self) -> None:
        self.head_timer = None
        if self.in_head and (self.cycle is None or self.cycle.response_complete):
            self.transport.close()


class HeadHeldBack:
    """A response cycle's transport: the response head is held back until the body's
    first write or the end of the loop's turn, and goes out with it in one `write`.

    uvicorn writes a head and a body as two `transport.write` calls, each a `send` system
    call on an idle socket: for a small answer (a WebDAV 405 or 207, most API JSON) the
    second was ~4 % of the server's CPU under rclone (py-spy). Nothing is delayed past the
    turn of the loop in which the head was written (then it goes out alone), so a response
    whose body comes later is seen as soon as before. Anything else is the transport's."""

    __slots__ = ("_cycle", "_head", "_loop", "_timer", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: Any, cycle: Any) -> None:
        self._transport = transport
        self._loop = loop
        self._cycle = cycle
        self._head: bytes | None = None
        self._timer: asyncio.Handle | None = None

    def write(self, data: bytes) -> None:
        if self._head is not None:
            data, self._head = self._head + data, None
        elif (
            self._cycle.response_started
            and not self._cycle.response_complete
            and self._timer is None
        ):
            # The head: uvicorn writes it right after marking the response started, and
            # nothing of this response has been written yet (the timer is set once).
            self._head = data
            self._timer = self._loop.call_soon(self.flush)
            return
        self._transport.write(data)

    def flush(self) -> None:
        """Write a head still held back (the end of the loop's turn, or a close)."""
        if self._head is not None:
            head, self._head = self._head, None
            if not self._transport.is_closing():
                self._transport.write(head)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


# Set in a request's scope by GuardedHttpToolsProtocol: its `BodyReader`; and by the reader,
# how many body bytes it read from the socket itself (for the request metrics).
BODY_READER_KEY = "docstore.body_reader"
DIRECT_BODY_BYTES_KEY = "docstore.direct_body_bytes"


class BodyReader:
    """Lets a large upload read the rest of its request body from the socket itself.

    Why: uvicorn hands a body to the app as ~256 KB ASGI messages, each read by the event
    loop, parsed by httptools, copied into new bytes objects and passed up through the
    middleware: ~1.3 CPU-s per GiB on this machine before a byte is hashed or written,
    against ~0.2 for `recv_into` a reused buffer (bench/PROFILE.md, session 5). A worker
    thread that reads the socket directly (`docstore.storage.bodyio.receive_into`) skips
    all of that and frees the loop meanwhile.

    `take()` (on the event loop, before anything read the body) pauses the transport's
    reading, sends `100 Continue` if the client waits for it, and returns the body bytes
    httptools already parsed, a duplicate of the socket and how many bytes are left to
    read from it. httptools never sees those bytes, so its parser would take the next
    request's bytes for body: the connection closes after the answer (`keep_alive` off,
    which uvicorn turns into `Connection: close`). `finish()` marks the body read.
    Not offered (None) for chunked bodies, TLS, or once part of the body was consumed.
    """

    def __init__(self, protocol: GuardedHttpToolsProtocol, cycle: Any) -> None:
        self._protocol = protocol
        self._cycle = cycle
        self.parsed = 0  # body bytes httptools has handed to uvicorn for this request
        self._taken = False

    def take(self, min_left: int = 0) -> tuple[bytes, socket.socket, int] | None:
        """(bytes already received, the socket, bytes left), or None: read it as ASGI, as
        also when fewer than `min_left` bytes are left (not worth the connection)."""
        p, cycle = self._protocol, self._cycle
        if self._taken or p.cycle is not cycle or cycle.response_started or cycle.disconnected:
            return None
        if not cycle.more_body or self.parsed != len(cycle.body):
            return None  # all of it is here already, or the app has read some of it
        if p.transport.get_extra_info("sslcontext") is not None:
            return None
        length = None
        for name, value in cycle.scope["headers"]:
            if name == b"transfer-encoding":
                return None
            if name == b"content-length":
                length = _as_int(value)
        if length is None or length - self.parsed < max(min_left, 1):
            return None
        raw = p.transport.get_extra_info("socket")
        if raw is None:
            return None
        sock = socket.socket(fileno=os.dup(raw.fileno()))
        p.flow.pause_reading()
        if cycle.waiting_for_100_continue and not p.transport.is_closing():
            p.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            cycle.waiting_for_100_continue = False
        first = bytes(cycle.body)
        cycle.body = bytearray()
        cycle.keep_alive = False
        self._taken = True
        return first, sock, length - self.parsed

    def finish(self, received: int) -> None:
        """The body is read (or given up after `received` bytes): later `receive()` calls
        get its end."""
        self._cycle.scope[DIRECT_BODY_BYTES_KEY] = received
        self._cycle.more_body = False
        self._cycle.message_event.set()


def _as_int(value: bytes) -> int | None:
    return int(value) if value.isdigit() else None


# Set once this process was asked to stop (SIGTERM/SIGINT): `/readyz` answers 503 from then on.
DRAINING = threading.Event()


def draining() -> bool:
    """Whether this process is shutting down (no longer ready for new work)."""
    return DRAINING.is_set()


class DrainingServer(uvicorn.Server):
    """uvicorn's server, readiness-aware. On SIGTERM (or SIGINT) `/readyz` answers 503 at
    once; after DOCSTORE_SHUTDOWN_DELAY_SECONDS (default 0: at once; set it to the period a
    balancer that polls `/readyz` needs to notice) the listener closes, idle connections
    close, the requests in flight finish (at most `timeout_graceful_shutdown`, from
    DOCSTORE_SHUTDOWN_GRACE_SECONDS) and the app shuts down (the in-process job worker
    finishes its job and gives its lease back). A second signal stops at once."""

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        delay = get_settings().shutdown_delay_seconds
        first = not DRAINING.is_set()
        DRAINING.set()
        if first and delay > 0:
            timer = threading.Timer(delay, super().handle_exit, (sig, frame))
            timer.daemon = True
            timer.start()
            return
        super().handle_exit(sig, frame)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """Stop taking connections without resetting any a client already opened, then
        uvicorn's shutdown (idle connections closed, requests in flight finished)."""
        await self._drain_listeners()
        await super().shutdown(sockets)

    async def _drain_listeners(self) -> None:
        """Closing a listening socket resets the connections in its accept queue: the
        kernel completed them, so a balancer has sent its request and sees a reset it may
        not retry (a POST: nginx answered 502 during rolling restarts). Instead, a socket
        filter drops new connection requests (the client retries a SYN after a second and
        then meets the closed port, which a balancer passes to the next server), the queue
        is served until empty, and the loop reads the requests of the connections just
        accepted, so they count as in flight and finish."""
        listeners = [sock for server in self.servers for sock in server.sockets]
        if not listeners or not sys.platform.startswith("linux"):
            return
        for sock in listeners:
            drop_new_connections(sock)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + LISTEN_DRAIN_SECONDS
        while loop.time() < deadline and any(accept_queue(sock) for sock in listeners):
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)


LISTEN_DRAIN_SECONDS = 2.0
SO_ATTACH_FILTER = 26  # <asm-generic/socket.h>
# A classic BPF program of one instruction, BPF_RET|BPF_K 0: every packet dropped.
_DROP_ALL = ctypes.create_string_buffer(struct.pack("HBBI", 0x06, 0, 0, 0))


def drop_new_connections(sock: Any) -> None:
    """Make a listening socket (Linux) ignore new connection requests; the connections
    already queued stay acceptable."""
    program = struct.pack("HP", 1, ctypes.addressof(_DROP_ALL))  # struct sock_fprog
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, program)


def accept_queue(sock: Any) -> int:
    """Connections waiting in a listening socket's accept queue (Linux TCP_INFO: a
    listener's `tcpi_unacked`); 0 when it cannot tell."""
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
    except (OSError, AttributeError):
        return 0
    return int(struct.unpack_from("I", info, 24)[0])
