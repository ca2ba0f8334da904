"""Speaking the upload contract over HTTP, for the in-process and the end-to-end tests."""

from __future__ import annotations

import hashlib
from typing import Any

import httpx

from docstore.hashing import BlockHasher

MiB = 1024 * 1024


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Uploader:
    """One signed-in user's view of /uploads; part URLs go wherever they point."""

    def __init__(
        self, api: httpx.Client, token: str, raw: httpx.Client | None = None, user_id: int = 0
    ) -> None:
        self.api = api
        self.user_id = user_id
        self.headers = {"Authorization": f"Bearer {token}"}
        self.raw = raw or api
        self.base = str(api.base_url).rstrip("/")

    def _client_for(self, url: str) -> httpx.Client:
        return self.api if url.startswith(self.base) else self.raw

    def initiate(self, name: str, data: bytes | None = None, **fields: Any) -> httpx.Response:
        """POST /uploads for `data` (size and checksum from it unless given)."""
        body: dict[str, Any] = {"filename": name}
        if data is not None:
            body |= {"size_bytes": len(data), "checksum_sha256": sha256_hex(data)}
        body.update(fields)
        return self.api.post("/api/v1/uploads", json=body, headers=self.headers)

    def initiate_hashed(
        self, name: str, data: bytes, part_size: int = 5 * MiB, **fields: Any
    ) -> httpx.Response:
        """POST /uploads declaring each part's SHA-256 (what the typed client sends)."""
        hasher = BlockHasher(part_size)
        hasher.update(data)
        declared = {"part_size": part_size, "part_checksums_sha256": hasher.block_digests_b64()}
        return self.initiate(name, data, **(declared | fields))

    def upload_hashed(self, name: str, data: bytes, **fields: Any) -> dict[str, Any]:
        """The whole flow with part checksums; returns the completed document."""
        r = self.initiate_hashed(name, data, **fields)
        assert r.status_code == 201, r.text
        started = r.json()
        if not started["skip_upload"]:
            self.put_parts(started, data)
        done = self.complete(started["upload_id"])
        assert done.status_code == 201, done.text
        return dict(done.json())

    def put_parts(self, started: dict[str, Any], data: bytes) -> list[dict[str, Any]]:
        """PUT each part of `data` to its signed request; the parts as reported back."""
        size = started["part_size"]
        reported = []
        for part in started["parts"]:
            n = part["part_number"]
            chunk = data[(n - 1) * size : n * size]
            client = self._client_for(part["url"])
            r = client.request(part["method"], part["url"], content=chunk, headers=part["headers"])
            assert r.status_code == 200, r.text
            reported.append({"part_number": n, "etag": r.headers["etag"]})
        return reported

    def complete(self, upload_id: str, **body: Any) -> httpx.Response:
        return self.api.post(
            f"/api/v1/uploads/{upload_id}/complete", json=body or None, headers=self.headers
        )

    def discard(self, upload_id: str) -> httpx.Response:
        return self.api.delete(f"/api/v1/uploads/{upload_id}", headers=self.headers)

    def upload(
        self, name: str, data: bytes, *, send_etags: bool = False, **fields: Any
    ) -> dict[str, Any]:
        """The whole flow; returns the completed document (201 expected at every step)."""
        r = self.initiate(name, data, **fields)
        assert r.status_code == 201, r.text
        started = r.json()
        reported = [] if started["skip_upload"] else self.put_parts(started, data)
        body: dict[str, Any] = {"parts": reported} if send_etags else {}
        done = self.complete(started["upload_id"], **body)
        assert done.status_code == 201, done.text
        return dict(done.json())

    def me(self) -> dict[str, Any]:
        r = self.api.get("/api/v1/users/me", headers=self.headers)
        assert r.status_code == 200, r.text
        return dict(r.json())

    def download(self, doc_id: int, **params: Any) -> httpx.Response:
        """Follow the download redirect to its signed URL."""
        r = self.api.get(
            f"/api/v1/documents/{doc_id}/download", params=params, headers=self.headers
        )
        if r.status_code != 307:
            return r
        url = r.headers["location"]
        return self._client_for(url).get(url)
