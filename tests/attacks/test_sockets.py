"""Socket-level attacks against the real server process: oversized headers and bodies that
arrive too slowly (slow-loris). Every wait is bounded."""

from __future__ import annotations

import itertools
import json
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import h11
import httpx
import pytest
from sqlalchemy import func, select

from docstore.db import Database
from docstore.documents.models import Blob
from docstore.documents.receive import SMALL_BODY  # bodies up to it: the small-upload path
from tests.fixtures.server import ServerProcess, per_backend, shared_server, start_server

pytestmark = pytest.mark.e2e

BODY_TIMEOUT = 2.0
HEADER_TIMEOUT = 2.0
SLACK = 8.0

T = TypeVar("T")
_users = itertools.count()


@pytest.fixture(scope="module", params=per_backend("sockets"))
def strict_process(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """One real server per database for the module, with short body and header read
    timeouts (every test here wants the same two)."""
    env = {
        "DOCSTORE_BODY_READ_TIMEOUT_SECONDS": str(BODY_TIMEOUT),
        "DOCSTORE_HEADER_TIMEOUT_SECONDS": str(HEADER_TIMEOUT),
    }
    yield from shared_server(request, tmp_path_factory, env)


@pytest.fixture
def strict_server(strict_process: ServerProcess) -> tuple[ServerProcess, str]:
    """The module's strict server, and the token of a user of this test's own."""
    email = f"s-{next(_users)}@example.com"
    r = httpx.post(
        f"{strict_process.url}/api/v1/auth/register",
        json={"email": email, "name": "S", "password": "socket-pass"},
        timeout=30,
    )
    assert r.status_code == 201, r.text
    return strict_process, r.json()["token"]


def _connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=SLACK)
    return sock


@dataclass
class Reply:
    """What the server sent, and how the connection ended."""

    data: bytes = b""
    first_byte: float | None = None  # monotonic time of the first byte received
    closed: float | None = None  # monotonic time of the EOF or RST; None: still open


def _read_until_closed(sock: socket.socket, deadline: float, reply: Reply | None = None) -> Reply:
    """Everything the server sends until it closes the connection (EOF or reset), bounded by
    `deadline`; a connection that merely goes silent is still open (`closed` is None)."""
    reply = reply or Reply()
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        except ConnectionResetError:
            reply.closed = time.monotonic()
            break
        if not chunk:
            reply.closed = time.monotonic()
            break
        if reply.first_byte is None:
            reply.first_byte = time.monotonic()
        reply.data += chunk
    return reply


def _dribble(sock: socket.socket, piece: bytes, every: float, deadline: float) -> Reply:
    """Send `piece` each time the server has been silent for `every` seconds, until it sends
    something or closes the connection (or `deadline`); then read until it closes."""
    reply = Reply()
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(min(every, left))
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            try:
                sock.sendall(piece)
            except (BrokenPipeError, ConnectionResetError):
                reply.closed = time.monotonic()
                return reply
            continue
        except ConnectionResetError:
            reply.closed = time.monotonic()
            return reply
        if not chunk:
            reply.closed = time.monotonic()
            return reply
        reply.first_byte = time.monotonic()
        reply.data = chunk
        return _read_until_closed(sock, deadline, reply)
    return reply


@pytest.mark.parametrize(
    ("path", "length"),
    [
        ("/api/v1/files?name=slow.txt", 1_000_000),
        # Declared small: read whole on the event loop before it is stored (SMALL_BODY).
        ("/api/v1/files?name=slow-small.txt", 1000),
        ("/api/v1/folders", 1_000_000),
    ],
    ids=["upload", "small-upload", "json"],
)
def test_slow_loris_bodies_are_cut_off(
    strict_server: tuple[ServerProcess, str], path: str, length: int
) -> None:
    """Headers, then a body dribbled slower than the read timeout: the server answers within
    the timeout plus slack, closes, and keeps serving everyone else."""
    srv, token = strict_server
    sock = _connect(srv.url)
    content_type = "application/json" if "folders" in path else "application/octet-stream"
    head = (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: {content_type}\r\nContent-Length: {length}\r\n\r\n"
    )
    started = time.monotonic()
    try:
        sock.sendall(head.encode() + b"{")
        # One byte each time the server has been silent for 1.5 x the timeout: every read of
        # the body waits longer than the timeout allows.
        reply = _dribble(sock, b" ", BODY_TIMEOUT * 1.5, started + BODY_TIMEOUT + SLACK)
    finally:
        sock.close()
    assert reply.first_byte is not None, f"no answer within {BODY_TIMEOUT + SLACK} s: {reply}"
    assert reply.first_byte - started < BODY_TIMEOUT + SLACK
    assert reply.data.startswith(b"HTTP/1.1 4"), reply.data[:200]
    assert b"problem+json" in reply.data
    assert reply.closed is not None, f"the connection stayed open after the answer: {reply}"
    r = httpx.get(f"{srv.url}/api/v1/users/me", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200
    assert "Traceback" not in srv.log.read_text(errors="replace")


def _blob_rows(database: Database, after: int) -> list[tuple[str, int, bool]]:
    """(state, ref_count, unreferenced) of every blob row with an id above `after`, as the
    server committed them (the server is shared: earlier tests' rows are not this test's)."""
    with database.read_transaction() as db:
        rows = db.execute(
            select(Blob.state, Blob.ref_count, Blob.unreferenced_at)
            .where(Blob.id > after)
            .order_by(Blob.id)
        ).all()
    return [(state, refs, at is not None) for state, refs, at in rows]


def _last_blob_id(database: Database) -> int:
    with database.read_transaction() as db:
        return int(db.execute(select(func.coalesce(func.max(Blob.id), 0))).scalar_one())


def _files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


def _poll(probe: Callable[[], T], done: Callable[[T], bool], seconds: float) -> T:
    """`probe()` every 50 ms until `done` says yes or `seconds` pass; the last value."""
    deadline = time.monotonic() + seconds
    value = probe()
    while not done(value) and time.monotonic() < deadline:
        time.sleep(0.05)
        value = probe()
    return value


@pytest.mark.parametrize("length", [1000, 1_000_000], ids=["small", "streamed"])
def test_an_upload_whose_client_hangs_up_leaves_nothing(
    strict_server: tuple[ServerProcess, str], length: int
) -> None:
    """Half a body, then the connection closed: no document, no charge, no bytes kept, and
    no traceback in the log; a streamed body's pending blob row is given up, a small body
    never gets one."""
    srv, token = strict_server
    auth = {"Authorization": f"Bearer {token}"}
    assert srv.database_url is not None
    database = Database(srv.database_url)
    blobs = srv.data_dir / "blobs"
    # The module's tests run one after the other on this server (one xdist group): the
    # rows above `before` and the files not in `existing` are this upload's.
    existing = _files(blobs)
    try:
        before = _last_blob_id(database)
        sock = _connect(srv.url)
        try:
            sock.sendall(
                f"POST /api/v1/files?name=gone.bin HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer"
                f" {token}\r\nContent-Type: application/octet-stream\r\nContent-Length: {length}"
                f"\r\n\r\n".encode()
                + b"x" * (length // 2)
            )
            if length <= SMALL_BODY:
                # A small body is read whole before anything is written (the write group,
                # documents.write_group): half of one leaves no row at all.
                time.sleep(0.5)
                assert _blob_rows(database, before) == []
            else:
                # The server has the head: it committed a pending row before the body.
                rows = _poll(lambda: _blob_rows(database, before), bool, SLACK)
                assert rows == [("pending", 0, False)]
        finally:
            sock.close()
        if length <= SMALL_BODY:
            time.sleep(0.5)
            assert _blob_rows(database, before) == []
        else:
            # The server notices the hang-up and gives the row up (GC deletes it later).
            rows = _poll(
                lambda: _blob_rows(database, before),
                lambda r: r != [("pending", 0, False)],
                SLACK,
            )
            assert rows == [("deleting", 0, True)]
    finally:
        database.dispose()
    left = _poll(lambda: _files(blobs) - existing, lambda x: not x, SLACK)
    assert left == set()
    listing = httpx.get(f"{srv.url}/api/v1/folders/root/children", headers=auth).json()
    assert listing["items"] == []
    assert httpx.get(f"{srv.url}/api/v1/users/me", headers=auth).json()["used_bytes"] == 0
    assert "Traceback" not in srv.log.read_text(errors="replace")


def test_oversized_headers_are_refused(strict_server: tuple[ServerProcess, str]) -> None:
    """A 1 MiB header is refused by the server (431/400) or the connection is closed; the
    server does not crash and keeps serving."""
    srv, token = strict_server
    sock = _connect(srv.url)
    try:
        sock.sendall(b"GET /api/v1/users/me HTTP/1.1\r\nHost: x\r\nX-Big: ")
        sent = 0
        try:
            while sent < 1024 * 1024:
                sock.sendall(b"a" * 65536)
                sent += 65536
            sock.sendall(b"\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        answer = _read_until_closed(sock, time.monotonic() + SLACK)
    finally:
        sock.close()
    assert answer.data.split(b" ", 2)[1] in (b"400", b"431"), answer.data[:200]
    assert answer.closed is not None, answer
    r = httpx.get(f"{srv.url}/api/v1/users/me", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200


def _one_request(sock: socket.socket, deadline: float) -> bytes:
    """Send GET /healthz on a kept-alive connection and read its whole answer."""
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data or len(data) < _answer_length(data):
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        chunk = sock.recv(65536)
        assert chunk, f"closed during the first answer: {data!r}"
        data += chunk
    return data


def _answer_length(data: bytes) -> int:
    head, _, _ = data.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(head) + 4 + int(value)
    raise AssertionError(f"no content-length: {head!r}")


def _dribble_head(srv: ServerProcess, window: float, *, after_a_request: bool = False) -> Reply:
    """Open a connection (and, with `after_a_request`, complete one request on it first);
    then send a request head one header line every 0.5 s, for at most `window` seconds.
    `closed` counts from the head's first byte; None if the connection is still open."""
    sock = _connect(srv.url)
    try:
        if after_a_request:
            assert _one_request(sock, time.monotonic() + SLACK).startswith(b"HTTP/1.1 200")
        started = time.monotonic()
        sock.sendall(b"GET /api/v1/users/me HTTP/1.1\r\n")
        reply = _dribble(sock, b"X-Slow: 1\r\n", 0.5, started + window)
    finally:
        sock.close()
    if reply.closed is not None:
        reply.closed -= started
    return reply


def test_slow_loris_headers_are_cut_off(strict_server: tuple[ServerProcess, str]) -> None:
    """A request head dribbled line by line is disconnected (EOF or reset, not mere silence)
    at the header timeout, before the timeout plus slack, on a new or a kept-alive
    connection."""
    srv, token = strict_server
    # A new connection, and the second request of a kept-alive one (its timer starts at the
    # head's first byte, which also stops uvicorn's keep-alive timer).
    for after_a_request in (False, True):
        reply = _dribble_head(srv, HEADER_TIMEOUT + SLACK, after_a_request=after_a_request)
        assert reply.closed is not None, f"open after {HEADER_TIMEOUT + SLACK} s: {reply}"
        # Not earlier than the deadline either: a slow but live head has the whole timeout.
        assert HEADER_TIMEOUT * 0.9 <= reply.closed < HEADER_TIMEOUT + SLACK, reply
        assert reply.data == b""
    r = httpx.get(f"{srv.url}/api/v1/users/me", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200


def test_the_slow_head_probe_sees_a_server_without_a_header_timeout(
    tmp_path: Path, sqlite_url: str
) -> None:
    """The check above can fail: against a server whose header timeout is an hour, the same
    dribbled head is still connected at twice the strict server's timeout."""
    srv = start_server(tmp_path, sqlite_url, {"DOCSTORE_HEADER_TIMEOUT_SECONDS": "3600"})
    try:
        reply = _dribble_head(srv, HEADER_TIMEOUT * 2)
    finally:
        srv.stop()
    assert reply.closed is None and reply.data == b"", reply


def test_pipelined_answers_arrive_whole_and_in_order(
    strict_server: tuple[ServerProcess, str],
) -> None:
    """The server holds a response head back to send it with the body in one write
    (docstore.server.HeadHeldBack). Answers of every shape, pipelined on one connection in
    one send, still arrive whole, framed and in order: JSON, an empty 204-like OPTIONS,
    HEAD (a head alone), a WebDAV 405 with a text body, a 207, a 404 problem and a
    download streamed in blocks. Parsed by h11, a real HTTP/1.1 parser."""
    srv, token = strict_server
    auth = {"Authorization": f"Bearer {token}"}
    me = httpx.get(f"{srv.url}/api/v1/users/me", headers=auth).json()
    big = bytes(range(256)) * 4096 * 3  # 3 MiB: more than one block of a download
    put = httpx.put(f"{srv.url}/dav/files/framing.bin", content=big, headers=auth, timeout=60)
    assert put.status_code == 201, put.text
    assert httpx.request("MKCOL", f"{srv.url}/dav/files/f/", headers=auth).status_code == 201
    requests = [
        ("GET", "/api/v1/users/me", b""),
        ("OPTIONS", "/dav/files/", b""),
        ("HEAD", "/dav/files/framing.bin", b""),
        ("MKCOL", "/dav/files/f/", b""),
        ("PROPFIND", "/dav/files/f/", b""),
        ("GET", "/api/v1/documents/999999999", b""),
        ("GET", "/dav/files/framing.bin", b""),
        ("GET", "/healthz", b""),
    ]
    wire = b""
    for method, target, body in requests:
        head = f"{method} {target} HTTP/1.1\r\nHost: x\r\n"
        head += f"Authorization: {auth['Authorization']}\r\n"
        if method == "PROPFIND":
            head += "Depth: 0\r\n"
        if method not in ("GET", "HEAD"):
            head += f"Content-Length: {len(body)}\r\n"
        wire += head.encode() + b"\r\n" + body
    sock = _connect(srv.url)
    deadline = time.monotonic() + 60
    answers: list[tuple[int, dict[bytes, bytes], bytes]] = []
    reader = h11.Connection(h11.CLIENT)
    try:
        sock.sendall(wire)
        for method, target, _ in requests:
            headers = [("Host", "x")]
            reader.send(h11.Request(method=method, target=target, headers=headers))
            reader.send(h11.EndOfMessage())
            status, got, data = 0, {}, b""
            while True:
                event = reader.next_event()
                if event is h11.NEED_DATA:
                    sock.settimeout(max(0.01, deadline - time.monotonic()))
                    chunk = sock.recv(1 << 20)
                    assert chunk, f"closed after {len(answers)} answers"
                    reader.receive_data(chunk)
                elif isinstance(event, h11.Response):
                    status, got = event.status_code, dict(event.headers)
                elif isinstance(event, h11.Data):
                    data += bytes(event.data)
                elif isinstance(event, h11.EndOfMessage):
                    break
            answers.append((status, got, data))
            reader.start_next_cycle()
    finally:
        sock.close()
    statuses = [a[0] for a in answers]
    assert statuses == [200, 200, 200, 405, 207, 404, 200, 200], statuses
    assert json.loads(answers[0][2])["id"] == me["id"]
    assert answers[1][1][b"dav"] == b"1, 2" and answers[1][2] == b""
    assert answers[2][1][b"content-length"] == str(len(big)).encode() and answers[2][2] == b""
    assert answers[3][2].startswith(b"Something exists")
    assert b"multistatus" in answers[4][2] and b"/dav/files/f/" in answers[4][2]
    assert json.loads(answers[5][2])["status"] == 404
    assert answers[6][2] == big
    assert answers[7][2]
