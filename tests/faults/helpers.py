"""Speaking to a real `docstore serve` over HTTP while its parts are broken on purpose."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from tests.fixtures.mail import verify_over_http

API = "/api/v1"
MiB = 1024 * 1024


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def problem(r: httpx.Response) -> tuple[int, str | None]:
    """The status and, for problem JSON, its machine-readable code."""
    is_problem = r.headers.get("content-type", "").startswith("application/problem+json")
    return r.status_code, r.json().get("code") if is_problem else None


def host_port(url: str) -> tuple[str, int]:
    """(host, port) of a URL such as http://127.0.0.1:5000."""
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None, url
    return parts.hostname, parts.port


def print_errors(log: Path, marker: str) -> None:
    """Print the server log's lines holding `marker` (e.g. "database error"): pytest shows
    them when the test fails, so a 503 that should not have happened names its cause."""
    lines = log.read_text(errors="replace").splitlines()
    print(f"{log}: lines with {marker!r}:")
    for line in lines:
        if marker in line:
            print("   ", line)


def through(url: str, address: str) -> str:
    """`url` with its host:port replaced by `address` (a proxy in front of the service)."""
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)
    netloc[-1] = address
    return parts._replace(netloc="@".join(netloc)).geturl()


@dataclass
class Client:
    """One signed-in user of one server, over real HTTP (timeouts bound every call)."""

    base: str
    token: str
    user_id: int
    http: httpx.Client = field(repr=False)

    @classmethod
    def register(cls, base: str, name: str, timeout: float = 30) -> Client:
        http = httpx.Client(base_url=base, timeout=timeout, trust_env=False)
        email = f"{name}-{os.urandom(4).hex()}@example.com"
        body = {"email": email, "name": name, "password": "a long password"}
        r = http.post(f"{API}/auth/register", json=body)
        assert r.status_code == 201, r.text
        verify_over_http(base, email, http)
        out = r.json()
        return cls(base, out["token"], out["user"]["id"], http)

    def on(self, base: str) -> Client:
        """The same account through another URL (a proxy, a restarted process)."""
        http = httpx.Client(base_url=base, timeout=self.http.timeout, trust_env=False)
        return Client(base, self.token, self.user_id, http)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def request(self, method: str, url: str, **kw: Any) -> httpx.Response:
        headers = {**self.headers, **kw.pop("headers", {})}
        return self.http.request(method, url, headers=headers, **kw)

    def get(self, url: str, **kw: Any) -> httpx.Response:
        return self.request("GET", url, **kw)

    def post(self, url: str, **kw: Any) -> httpx.Response:
        return self.request("POST", url, **kw)

    def used_bytes(self) -> int:
        r = self.get(f"{API}/users/me")
        assert r.status_code == 200, r.text
        return int(r.json()["used_bytes"])

    def put_file(
        self, name: str, data: bytes | Iterable[bytes], folder: int | None = None
    ) -> httpx.Response:
        """Simple upload (POST /files); an iterable body is sent chunked, as it comes."""
        params: dict[str, Any] = {"name": name}
        if folder is not None:
            params["folder_id"] = folder
        return self.post(f"{API}/files", params=params, content=data)

    def initiate(self, name: str, data: bytes, **fields: Any) -> httpx.Response:
        body = {"filename": name, "size_bytes": len(data), "checksum_sha256": sha256_hex(data)}
        return self.post(f"{API}/uploads", json=body | fields)

    def put_parts(self, started: dict[str, Any], data: bytes) -> list[dict[str, Any]]:
        """PUT every part to its signed URL (storage's, or the server's own)."""
        size = started["part_size"]
        reported = []
        with httpx.Client(timeout=self.http.timeout, trust_env=False) as raw:
            for part in started["parts"]:
                n = part["part_number"]
                chunk = data[(n - 1) * size : n * size]
                r = raw.request(part["method"], part["url"], content=chunk, headers=part["headers"])
                assert r.status_code == 200, r.text
                reported.append({"part_number": n, "etag": r.headers["etag"]})
        return reported

    def complete(self, upload_id: str, parts: list[dict[str, Any]] | None = None) -> httpx.Response:
        body = {"parts": parts} if parts is not None else None
        return self.post(f"{API}/uploads/{upload_id}/complete", json=body)

    def upload(self, name: str, data: bytes) -> dict[str, Any]:
        """The whole multipart flow; the completed document."""
        r = self.initiate(name, data)
        assert r.status_code == 201, r.text
        started = r.json()
        parts = [] if started["skip_upload"] else self.put_parts(started, data)
        done = self.complete(started["upload_id"], parts)
        assert done.status_code == 201, done.text
        return dict(done.json())

    def download(self, doc_id: int, version_id: int | None = None) -> bytes:
        """Follow the download redirect; the bytes (200 expected at both steps)."""
        params = {} if version_id is None else {"version_id": version_id}
        r = self.get(f"{API}/documents/{doc_id}/download", params=params)
        assert r.status_code == 307, r.text
        with httpx.Client(timeout=self.http.timeout, trust_env=False) as raw:
            got = raw.get(r.headers["location"])
        assert got.status_code == 200, got.text
        return got.content

    def close(self) -> None:
        self.http.close()


def docstore(env: dict[str, str], *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run the `docstore` command (admin commands act on the configured DB and storage)."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("DOCSTORE_")} | env
    return subprocess.run(
        [sys.executable, "-m", "docstore.cli.main", *args],
        env=full,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
