"""Simple upload, download through signed URLs, quota, checksums."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient
from sqlalchemy import delete, func, select

from docstore.app import create_app
from docstore.audit.models import AuditLog
from docstore.documents.models import Blob, Document, DocumentVersion
from docstore.storage.inline import InlineObject
from tests.fixtures.app import BASE, Api, make_settings


def _objects(api: Api) -> list[str]:
    store = api.client.app.state.services.store  # type: ignore[attr-defined]
    return [o.key for o in store.iter_objects()]


def test_upload_download_roundtrip_with_metadata(api: Api) -> None:
    ann = api.register()
    data = os.urandom(300_000)
    r = ann.upload(
        "photo.png", data, headers={"X-Checksum-SHA256": hashlib.sha256(data).hexdigest()}
    )
    assert r.status_code == 201, r.text
    doc = r.json()
    assert doc["mime_type"] == "image/png"
    assert doc["size_bytes"] == len(data)
    assert doc["owner_id"] == ann.id and doc["parent_folder_id"] == ann.root
    v = doc["current_version"]
    assert (v["version_number"], v["is_current"], v["checksum_sha256"]) == (
        1,
        True,
        hashlib.sha256(data).hexdigest(),
    )
    assert "storage_key" not in r.text and "blobs/" not in r.text
    got = ann.get(f"/api/v1/documents/{doc['id']}")
    assert got.headers["etag"] == f'"{v["id"]}"'
    d = ann.download(doc["id"])
    assert d.status_code == 200 and d.content == data
    assert d.headers["content-type"] == "image/png"
    assert ann.me()["used_bytes"] == len(data)
    r = ann.get(f"/api/v1/documents/{doc['id']}/download", params={"redirect": "false"})
    assert r.status_code == 200
    # Beside the URL, the version it serves (API-ADDITIONS): what a client checks bytes against.
    assert r.json() | {"url": None, "expires_at": None} == {
        "url": None,
        "expires_at": None,
        "version_id": v["id"],
        "version_number": 1,
        "size_bytes": len(data),
        "checksum_sha256": hashlib.sha256(data).hexdigest(),
    }


def test_range_head_and_safe_content_disposition(api: Api) -> None:
    ann = api.register()
    data = bytes(range(256)) * 40
    name = 'we"ird\\ näme;.txt'
    doc = ann.upload(name, data).json()
    url = ann.get(f"/api/v1/documents/{doc['id']}/download").headers["location"]
    r = api.client.get(url, headers={"Range": "bytes=100-199"})
    assert r.status_code == 206 and r.content == data[100:200]
    h = api.client.head(url)
    assert h.status_code == 200 and int(h.headers["content-length"]) == len(data)
    cd = api.client.get(url).headers["content-disposition"]
    assert cd.startswith("attachment;")
    assert "\n" not in cd and "\r" not in cd
    assert "filename*=UTF-8''" in cd or "filename*=utf-8''" in cd


def test_tampered_and_expired_signed_urls_are_403(tmp_path: Path, database_url: str) -> None:
    settings = make_settings(tmp_path, database_url, signed_url_ttl_seconds=1)
    with TestClient(create_app(settings), base_url=BASE, follow_redirects=False) as client:
        ann = Api(client).register()
        doc = ann.upload("a.txt", b"secret bytes").json()
        url = ann.get(f"/api/v1/documents/{doc['id']}/download").headers["location"]
        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query))
        for field in list(query):
            forged = dict(query)
            forged[field] = forged[field][:-1] + ("A" if forged[field][-1:] != "A" else "B")
            r = client.get(urlunsplit(parts._replace(query=urlencode(forged))))
            assert r.status_code == 403, field
            assert b"secret bytes" not in r.content
        import time

        time.sleep(2.1)
        r = client.get(url)
        assert r.status_code == 403


def test_checksum_header_mismatch_stores_nothing(api: Api) -> None:
    ann = api.register()
    before = _objects(api)
    r = ann.upload("a.txt", b"actual", headers={"X-Checksum-SHA256": "0" * 64})
    assert r.status_code == 422 and r.json()["code"] == "checksum_mismatch"
    r = ann.upload("a.txt", b"actual", headers={"X-Checksum-SHA256": "not-hex"})
    assert r.status_code == 422 and r.json()["code"] == "validation_error"
    assert _objects(api) == before
    assert ann.me()["used_bytes"] == 0
    assert ann.get("/api/v1/folders/root/children").json()["items"] == []


def test_quota_exceeded_is_507_and_nothing_is_charged_or_stored(api: Api) -> None:
    ann = api.register()
    db = api.client.app.state.services.database  # type: ignore[attr-defined]
    from sqlalchemy import update

    from docstore.users.models import User

    with db.transaction() as s:
        s.execute(update(User).where(User.id == ann.id).values(quota_bytes=1000))
    assert ann.upload("fits.bin", b"x" * 600).status_code == 201
    before = _objects(api)
    r = ann.upload("too-big.bin", b"y" * 500)
    assert r.status_code == 507 and r.json()["code"] == "quota_exceeded"
    assert ann.me()["used_bytes"] == 600
    assert _objects(api) == before
    with db.transaction() as s:
        assert s.scalar(select(func.count()).select_from(Document)) == 1
        assert s.scalar(select(func.count()).select_from(DocumentVersion)) == 1
        pending = s.scalar(select(func.count()).select_from(Blob).where(Blob.state == "pending"))
        assert pending == 0

    # Without Content-Length (chunked), the quota is still enforced at the end.
    def gen() -> object:
        yield b"z" * 250
        yield b"z" * 250

    r = ann.upload("chunked.bin", gen())  # type: ignore[arg-type]
    assert r.status_code == 507
    assert ann.me()["used_bytes"] == 600
    assert _objects(api) == before


def test_simple_upload_limit_is_413(tmp_path: Path, database_url: str) -> None:
    settings = make_settings(tmp_path, database_url, simple_upload_max_bytes=1024)
    with TestClient(create_app(settings), base_url=BASE, follow_redirects=False) as client:
        ann = Api(client).register()
        r = ann.upload("big.bin", b"x" * 2048)
        assert r.status_code == 413 and r.json()["code"] == "too_large"

        def gen() -> object:
            for _ in range(4):
                yield b"x" * 512

        r = ann.upload("big2.bin", gen())  # type: ignore[arg-type]
        assert r.status_code == 413
        store = client.app.state.services.store  # type: ignore[attr-defined]
        assert list(store.iter_objects()) == []
        assert ann.me()["used_bytes"] == 0


def test_same_bytes_twice_are_stored_once_and_charged_twice(api: Api) -> None:
    ann, bob = api.register(), api.register()
    data = os.urandom(50_000)
    a = ann.upload("a.bin", data).json()
    b = bob.upload("b.bin", data).json()
    assert len(_objects(api)) == 1
    assert ann.me()["used_bytes"] == bob.me()["used_bytes"] == len(data)
    assert ann.download(a["id"]).content == data
    assert bob.download(b["id"]).content == data


def test_trash_restore_and_audit_rows(api: Api) -> None:
    ann = api.register()
    doc = ann.upload("a.txt", b"a").json()
    assert ann.delete(f"/api/v1/documents/{doc['id']}").status_code == 204
    assert ann.get(f"/api/v1/documents/{doc['id']}").status_code == 404
    assert ann.upload("a.txt", b"b").status_code == 201
    r = ann.post(f"/api/v1/documents/{doc['id']}/restore")
    assert r.status_code == 200 and r.json()["name"] == "a (2).txt"
    assert ann.post(f"/api/v1/documents/{doc['id']}/restore").status_code == 404
    db = api.client.app.state.services.database  # type: ignore[attr-defined]
    with db.transaction() as s:
        actions = [
            a
            for (a,) in s.execute(
                select(AuditLog.action)
                .where(AuditLog.document_id == doc["id"])
                .order_by(AuditLog.id)
            )
        ]
    assert actions == ["UPLOAD", "DELETE", "RESTORE"]


def test_health(api: Api) -> None:
    r = api.client.get("/healthz")
    assert r.status_code == 200
    assert r.json()["database"] == "ok" and r.json()["storage"] == "ok"
    assert api.client.get("/api/v1/health").json()["cache"] == "memory:ok"


def test_openapi_describes_every_endpoint(api: Api) -> None:
    """Every API route the app serves is in /api/v1/openapi.json, and every operation there
    is described for real: its path parameters, a success answer with a schema, errors as
    the problem JSON the server sends, and the credentials it needs. The list comes from the
    app's routes and the document itself, so a new endpoint is covered without editing this."""
    spec = api.client.get("/api/v1/openapi.json").json()
    app = api.client.app
    own = {"/api/v1/openapi.json", "/api/v1/docs"}
    served = {
        (method, route.path)
        for route in iter_route_contexts(app.routes)  # type: ignore[attr-defined]
        if route.path.startswith("/api/v1/") and route.path not in own
        for method in (route.methods or set()) - {"HEAD"}
    }
    documented = {
        (method.upper(), path)
        for path, operations in spec["paths"].items()
        for method in operations
    }
    assert served == documented
    assert len(documented) > 40
    problem = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for method, path in sorted(documented):
        op = spec["paths"][path][method.lower()]
        where = f"{method} {path}"
        declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
        assert declared == set(re.findall(r"{(\w+)}", path)), where
        ok = [s for s in op["responses"] if s.startswith(("2", "3"))]
        assert ok, f"{where} declares no success answer"
        for status in ok:
            content = op["responses"][status].get("content", {})
            if status not in ("204", "307"):
                assert any(c.get("schema") for c in content.values()), (
                    f"{where} {status}: no schema"
                )
        for status, response in op["responses"].items():
            # (The health check's 503 is its own body: which dependency is down.)
            if int(status) >= 400 and where != "GET /api/v1/health":
                assert response["content"] == problem, f"{where} {status}: {response['content']}"
        if path.startswith("/api/v1/links/") or path in PUBLIC:
            assert not op.get("security"), where
        else:
            assert {"bearerAuth": []} in op["security"], f"{where}: no bearer scheme declared"
            assert "401" in op["responses"], f"{where}: 401 not declared"
    schemes = spec["components"]["securitySchemes"]
    assert schemes["bearerAuth"] == {**schemes["bearerAuth"], "type": "http", "scheme": "bearer"}
    assert (
        "application/octet-stream"
        in spec["paths"]["/api/v1/files"]["post"]["requestBody"]["content"]
    )
    assert "507" in spec["paths"]["/api/v1/files"]["post"]["responses"]


PUBLIC = {
    "/api/v1/auth/register",
    "/api/v1/auth/login",
    "/api/v1/health",
    "/api/v1/auth/verify-email",
    "/api/v1/auth/password-reset",
    "/api/v1/auth/password-reset/confirm",
    "/api/v1/auth/invitations/{token}/accept",
}


@pytest.mark.parametrize("size", [100, 70_000], ids=["inline", "file"])
def test_download_of_a_lost_object_is_503_not_a_dead_link(api: Api, size: int) -> None:
    """The server checks storage before signing: a missing object is never a 307 (a small
    one kept in the database, storage.inline, as a file)."""
    ann = api.register()
    doc = ann.upload("lost.txt", os.urandom(size)).json()
    services = api.client.app.state.services  # type: ignore[attr-defined]
    with services.database.transaction() as db:
        blob = db.scalar(
            select(Blob).join(DocumentVersion).where(DocumentVersion.document_id == doc["id"])
        )
        key = blob.storage_key
        assert key.startswith("inline/") == (size < 65536)
        # Lost: the row behind its blob row's back (delete() leaves that to the blob row).
        db.execute(delete(InlineObject).where(InlineObject.storage_key == key))
    services.store.delete(key)
    r = ann.get(f"/api/v1/documents/{doc['id']}/download")
    assert r.status_code == 503, r.text
    assert r.json()["code"] == "storage_unavailable"
    assert "location" not in r.headers
