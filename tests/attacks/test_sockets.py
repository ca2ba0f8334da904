"""Socket-level attacks against the real server process: oversized headers and bodies that
arrive too slowly (slow-loris). Every wait is bounded."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fixtures.server import ServerProcess, start_server

pytestmark = pytest.mark.e2e

BODY_TIMEOUT = 2.0
HEADER_TIMEOUT = 2.0
SLACK = 8.0


@pytest.fixture
def strict_server(tmp_path: Path, database_url: str) -> Iterator[tuple[ServerProcess, str]]:
    """A real server with a short body read timeout, and a signed-in user's token."""
    srv = start_server(
        tmp_path,
        database_url,
        {
            "DOCSTORE_BODY_READ_TIMEOUT_SECONDS": str(BODY_TIMEOUT),
            "DOCSTORE_HEADER_TIMEOUT_SECONDS": str(HEADER_TIMEOUT),
        },
    )
    try:
        r = httpx.post(
            f"{srv.url}/api/v1/auth/register",
            json={"email": "s@example.com", "name": "S", "password": "socket-pass"},
            timeout=30,
        )
        assert r.status_code == 201, r.text
        yield srv, r.json()["token"]
    finally:
        srv.stop()


def _connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=SLACK)
    return sock


def _read_until_closed(sock: socket.socket, deadline: float) -> bytes:
    """Everything the server sends until it closes the connection (bounded by `deadline`)."""
    data = b""
    while time.monotonic() < deadline:
        sock.settimeout(max(0.1, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
    return data


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
    """Headers, then a body dribbled slower than the read timeout: the server answers and
    closes within the timeout plus slack, and keeps serving everyone else."""
    srv, token = strict_server
    sock = _connect(srv.url)
    content_type = "application/json" if "folders" in path else "application/octet-stream"
    head = (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: {content_type}\r\nContent-Length: {length}\r\n\r\n"
    )
    started = time.monotonic()
    sock.sendall(head.encode() + b"{")
    answer = b""
    try:
        # One byte per BODY_TIMEOUT * 2: each read waits longer than the timeout.
        for _ in range(10):
            time.sleep(BODY_TIMEOUT * 1.5)
            try:
                sock.sendall(b" ")
            except (BrokenPipeError, ConnectionResetError):
                break
            if time.monotonic() - started > BODY_TIMEOUT + SLACK:
                break
        answer = _read_until_closed(sock, started + BODY_TIMEOUT + SLACK + 5)
    finally:
        sock.close()
    elapsed = time.monotonic() - started
    assert elapsed < BODY_TIMEOUT * 1.5 * 10, "the server never cut the slow body off"
    assert answer.startswith(b"HTTP/1.1 4"), answer[:200]
    assert b"problem+json" in answer
    r = httpx.get(f"{srv.url}/api/v1/users/me", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200
    assert "Traceback" not in srv.log.read_text(errors="replace")


@pytest.mark.parametrize("length", [1000, 1_000_000], ids=["small", "streamed"])
def test_an_upload_whose_client_hangs_up_leaves_nothing(
    strict_server: tuple[ServerProcess, str], length: int
) -> None:
    """Half a body, then the connection closed: no document, no charge, the pending blob
    row given up and its bytes gone, and no traceback in the log."""
    srv, token = strict_server
    auth = {"Authorization": f"Bearer {token}"}
    sock = _connect(srv.url)
    try:
        sock.sendall(
            f"POST /api/v1/files?name=gone.bin HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer"
            f" {token}\r\nContent-Type: application/octet-stream\r\nContent-Length: {length}"
            f"\r\n\r\n".encode()
            + b"x" * (length // 2)
        )
        time.sleep(0.5)  # the server has the head and half the body
    finally:
        sock.close()
    deadline = time.monotonic() + SLACK
    blobs = srv.data_dir / "blobs"
    while time.monotonic() < deadline:  # the server notices the hang-up and cleans up
        left = [p for p in blobs.rglob("*") if p.is_file()] if blobs.exists() else []
        if not left:
            break
        time.sleep(0.1)
    assert left == []
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
    assert answer.split(b" ", 2)[1] in (b"400", b"431"), answer[:200]
    r = httpx.get(f"{srv.url}/api/v1/users/me", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200


def test_slow_loris_headers_are_cut_off(strict_server: tuple[ServerProcess, str]) -> None:
    """A request head dribbled byte by byte is disconnected within the header timeout."""
    srv, token = strict_server
    sock = _connect(srv.url)
    started = time.monotonic()
    closed = False
    try:
        sock.sendall(b"GET /api/v1/users/me HTTP/1.1\r\n")
        for _ in range(40):
            time.sleep(0.5)
            try:
                sock.sendall(b"X-Slow: 1\r\n")
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            if time.monotonic() - started > HEADER_TIMEOUT + SLACK:
                break
        if not closed:
            closed = _read_until_closed(sock, started + HEADER_TIMEOUT + SLACK) == b""
    finally:
        sock.close()
    assert closed and time.monotonic() - started < HEADER_TIMEOUT + SLACK + 1
    r = httpx.get(f"{srv.url}/api/v1/users/me", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200
