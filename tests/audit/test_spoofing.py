"""The recorded address comes from the socket; X-Forwarded-For counts only from a trusted
proxy (against the real server process, plus the proxy rules on a bare request)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from starlette.requests import Request

from docstore.deps import client_ip
from tests.fixtures.server import ServerProcess, start_server

SPOOFED = "203.0.113.66"
CLIENT = "198.51.100.7"


def _login_ip(srv: ServerProcess, name: str, forwarded_for: str) -> str:
    """Register, sign in with an X-Forwarded-For header, return the LOGIN entry's address."""
    creds = {"email": f"{name}@example.com", "password": "pass-word-1"}
    r = httpx.post(f"{srv.url}/api/v1/auth/register", json={**creds, "name": name})
    assert r.status_code == 201, r.text
    r = httpx.post(
        f"{srv.url}/api/v1/auth/login", json=creds, headers={"X-Forwarded-For": forwarded_for}
    )
    assert r.status_code == 200, r.text
    auth = {"Authorization": f"Bearer {r.json()['token']}"}
    r = httpx.get(f"{srv.url}/api/v1/audit", params={"action": "LOGIN"}, headers=auth)
    assert r.status_code == 200, r.text
    (entry,) = r.json()["items"]
    return str(entry["ip_address"])


# The address logic does not depend on the database: SQLite keeps these server starts cheap.
@pytest.mark.e2e
def test_spoofed_forwarded_for_is_ignored_unless_the_peer_is_a_trusted_proxy(
    tmp_path: Path, sqlite_url: str
) -> None:
    srv = start_server(tmp_path, sqlite_url)
    try:
        assert _login_ip(srv, "mallory", SPOOFED) == "127.0.0.1"
    finally:
        srv.stop()
    trusted = {"DOCSTORE_TRUSTED_PROXIES": json.dumps(["127.0.0.1/32"])}
    srv = start_server(tmp_path, sqlite_url, trusted)
    try:
        # The proxy appends the address it saw; what the client wrote before it is ignored.
        assert _login_ip(srv, "alice", f"{SPOOFED}, {CLIENT}") == CLIENT
    finally:
        srv.stop()


@pytest.mark.parametrize(
    ("peer", "trusted", "header", "expected"),
    [
        ("192.0.2.1", [], SPOOFED, "192.0.2.1"),
        ("192.0.2.1", ["10.0.0.0/8"], SPOOFED, "192.0.2.1"),  # the peer is not a proxy
        ("10.1.2.3", ["10.0.0.0/8"], SPOOFED, SPOOFED),
        ("10.1.2.3", ["10.0.0.0/8"], f"{SPOOFED}, {CLIENT}, 10.9.9.9", CLIENT),
        ("10.1.2.3", ["10.0.0.0/8"], "", "10.1.2.3"),
    ],
)
def test_client_ip_rules(peer: str, trusted: list[str], header: str, expected: str) -> None:
    settings = SimpleNamespace(trusted_proxies=trusted)
    app = SimpleNamespace(state=SimpleNamespace(services=SimpleNamespace(settings=settings)))
    headers = [(b"x-forwarded-for", header.encode())] if header else []
    scope = {"type": "http", "client": (peer, 40000), "headers": headers, "app": app}
    assert client_ip(Request(scope)) == expected
