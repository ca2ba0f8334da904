"""WebDAV requests through the in-process app, as a registered user (Basic: email and API
token as the app password), shared by the tests of tests/dav."""

from __future__ import annotations

import base64
from typing import Any

import httpx

from tests.fixtures.app import User

API = "/api/v1"
DAV = "/dav/files"


def basic(user: User, password: str | None = None) -> dict[str, str]:
    raw = f"{user.email}:{password or user.token}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


def dav(user: User, method: str, path: str, **kw: Any) -> httpx.Response:
    """A request as `user` with Basic credentials (email + API token as app password)."""
    headers = {**basic(user), **kw.pop("headers", {})}
    return user.api.client.request(method, path, headers=headers, **kw)


def lockinfo(owner: str | None = None) -> bytes:
    """A LOCK body asking for an exclusive write lock, with `owner` if given."""
    held_by = f"<D:owner>{owner}</D:owner>".encode() if owner else b""
    return (
        b'<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/>'
        b"</D:lockscope><D:locktype><D:write/></D:locktype>" + held_by + b"</D:lockinfo>"
    )
