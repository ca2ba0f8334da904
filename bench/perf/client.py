"""Talking to docstore's API for set-up, and a raw-socket sendfile PUT for upload parts."""

from __future__ import annotations

import hashlib
import json
import socket
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

API = "/api/v1"


class Docstore:
    """A signed-in user of a running docstore."""

    def __init__(self, url: str, token: str, user: dict[str, Any]) -> None:
        self.url = url
        self.token = token
        self.user = user
        self.http = httpx.Client(
            base_url=url + API, headers={"authorization": f"Bearer {token}"}, timeout=600
        )

    @classmethod
    def register(cls, url: str, email: str) -> Docstore:
        r = httpx.post(
            f"{url}{API}/auth/register",
            json={"email": email, "name": email.split("@")[0], "password": "bench password 1"},
            timeout=60,
        )
        r.raise_for_status()
        body = r.json()
        return cls(url, body["token"], body["user"])

    @property
    def auth(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.token}"}

    def mkdir(self, name: str, parent: int | None = None) -> int:
        r = self.http.post("/folders", json={"name": name, "parent_id": parent})
        r.raise_for_status()
        return int(r.json()["id"])

    def upload_small(self, folder: int, name: str, data: bytes) -> dict[str, Any]:
        r = self.http.post(
            "/files",
            params={"folder_id": folder, "name": name},
            content=data,
            headers={"x-checksum-sha256": hashlib.sha256(data).hexdigest()},
        )
        r.raise_for_status()
        return dict(r.json())

    def has_multipart(self) -> bool:
        spec = httpx.get(f"{self.url}{API}/openapi.json", timeout=30).json()
        return f"{API}/uploads" in spec.get("paths", {})

    def has_shares(self) -> bool:
        spec = httpx.get(f"{self.url}{API}/openapi.json", timeout=30).json()
        return f"{API}/shares" in spec.get("paths", {})


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(8 << 20):
            h.update(chunk)
    return h.hexdigest()


def put_range(
    url: str, path: Path, offset: int, count: int, headers: dict[str, str]
) -> tuple[int, dict[str, str], bytes]:
    """PUT `count` bytes of `path` from `offset` with sendfile; (status, headers, body)."""
    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    head = [
        f"PUT {target} HTTP/1.1",
        f"Host: {parts.netloc}",
        f"Content-Length: {count}",
        "Connection: close",
    ]
    head += [f"{k}: {v}" for k, v in headers.items()]
    with socket.create_connection((parts.hostname, parts.port or 80), timeout=600) as sock:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        with path.open("rb") as f:
            sent = sock.sendfile(f, offset, count)
            if sent != count:
                raise OSError(f"sent {sent} of {count} bytes")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    raw_head, _, body = data.partition(b"\r\n\r\n")
    lines = raw_head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    hdrs = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    return status, hdrs, body


def multipart_upload(
    ds: Docstore,
    folder: int,
    name: str,
    path: Path,
    sha256: str,
    parallel: int = 4,
    part_checksums: tuple[int, list[str]] | None = None,
) -> tuple[float, dict[str, Any]]:
    """POST /uploads, PUT the parts (in parallel, sendfile), complete; (seconds, document).

    `part_checksums` (part size, base64 SHA-256 of each part) are declared at initiate, as
    the typed client does: storage checks each part and the server reads nothing back.
    """
    from concurrent.futures import ThreadPoolExecutor

    size = path.stat().st_size
    t0 = time.perf_counter()
    body: dict[str, Any] = {
        "filename": name,
        "size_bytes": size,
        "checksum_sha256": sha256,
        "folder_id": folder,
    }
    if part_checksums is not None:
        body |= {"part_size": part_checksums[0], "part_checksums_sha256": part_checksums[1]}
    r = ds.http.post("/uploads", json=body)
    r.raise_for_status()
    init = r.json()
    part_size = int(init["part_size"])

    def send(part: dict[str, Any]) -> dict[str, Any]:
        n = int(part["part_number"])
        offset = (n - 1) * part_size
        count = min(part_size, size - offset)
        status, hdrs, body = put_range(part["url"], path, offset, count, part.get("headers") or {})
        if status >= 300:
            raise RuntimeError(f"part {n}: {status} {body[:300]!r}")
        return {"part_number": n, "etag": hdrs.get("etag", "").strip('"')}

    with ThreadPoolExecutor(parallel) as pool:
        done = list(pool.map(send, init.get("parts") or []))
    r = ds.http.post(f"/uploads/{init['upload_id']}/complete", json={"parts": done})
    if r.status_code >= 300:
        raise RuntimeError(f"complete: {r.status_code} {r.text[:300]}")
    return time.perf_counter() - t0, dict(r.json())


def insert_share(database_url: str, folder_id: int, user_id: int, owner_id: int) -> None:
    """A VIEW share on a folder, written straight to the database (before POST /shares landed)."""
    from sqlalchemy import insert

    from docstore.db import make_engine, utcnow
    from docstore.sharing.models import Share

    engine = make_engine(database_url)
    now = utcnow()
    with engine.begin() as conn:
        conn.execute(
            insert(Share.__table__).values(
                folder_id=folder_id,
                kind="user",
                shared_with_user_id=user_id,
                permission=1,
                created_by=owner_id,
                created_at=now,
                updated_at=now,
                is_active=True,
            )
        )
    engine.dispose()


def mark_verified(database_url: str, user_id: int) -> None:
    """Set a bench account's address as verified, as following the mailed link would: a
    share to an unverified account waits as a pending invitation (sharing.service)."""
    from sqlalchemy import update

    from docstore.db import make_engine
    from docstore.users.models import User

    engine = make_engine(database_url)
    with engine.begin() as conn:
        conn.execute(update(User).where(User.id == user_id).values(email_verified=True))
    engine.dispose()


def share_folder(ds: Docstore, database_url: str, folder_id: int, other: Docstore) -> str:
    """Share a folder with `other` (VIEW) through the API if it exists, else in SQL."""
    if ds.has_shares():
        mark_verified(database_url, int(other.user["id"]))
        r = ds.http.post(
            "/shares",
            json={"folder_id": folder_id, "permission": "VIEW", "email": other.user["email"]},
        )
        if r.status_code < 300:
            return "POST /shares"
        raise RuntimeError(f"POST /shares: {r.status_code} {r.text[:300]}")
    insert_share(database_url, folder_id, int(other.user["id"]), int(ds.user["id"]))
    return "SQL insert"


def dumps(obj: Any) -> str:
    return json.dumps(obj, indent=2, default=str)


def populate_folder(database_url: str, folder_id: int, like_document: int, n: int) -> None:
    """`n` more documents in a folder, written in SQL as copies of one uploaded document.

    Listing is what is measured; making 10,000 documents through the API would only repeat
    the 4 KiB workload. Each copy has its own version row pointing at the same blob.
    """
    from sqlalchemy import insert, select, text, update

    from docstore.db import make_engine, utcnow
    from docstore.documents.models import Blob, Document, DocumentVersion

    engine = make_engine(database_url)
    now = utcnow()
    with engine.begin() as conn:
        doc = conn.execute(select(Document).where(Document.id == like_document)).one()
        ver = conn.execute(
            select(DocumentVersion).where(DocumentVersion.id == doc.current_version_id)
        ).one()
        conn.execute(
            insert(Document.__table__),
            [
                {
                    "owner_id": doc.owner_id,
                    "folder_id": folder_id,
                    "name": f"l-{i:05d}.txt",
                    "mime_type": doc.mime_type,
                    "last_version_number": 1,
                    "created_by": doc.created_by,
                    "created_at": now,
                    "updated_at": now,
                    "is_deleted": False,
                    "trash_root": False,
                }
                for i in range(n)
            ],
        )
        conn.execute(
            text(
                "INSERT INTO document_versions (document_id, version_number, blob_id, size_bytes,"
                " checksum_sha256, created_by, created_at, keep_forever, is_damaged)"
                " SELECT d.id, 1, :blob, :size, :sha, d.created_by, d.created_at, false, false"
                " FROM documents d WHERE d.folder_id = :folder AND d.current_version_id IS NULL"
            ),
            {
                "blob": ver.blob_id,
                "size": ver.size_bytes,
                "sha": ver.checksum_sha256,
                "folder": folder_id,
            },
        )
        conn.execute(
            text(
                "UPDATE documents SET current_version_id = (SELECT v.id FROM document_versions v"
                " WHERE v.document_id = documents.id) WHERE folder_id = :folder"
                " AND current_version_id IS NULL"
            ),
            {"folder": folder_id},
        )
        conn.execute(
            update(Blob).where(Blob.id == ver.blob_id).values(ref_count=Blob.ref_count + n)
        )
    engine.dispose()
