"""The attack suite, in-process over the HTTP API: one test per attack item, on SQLite and
PostgreSQL. The socket-level attacks (oversized headers, slow bodies) are in test_sockets.py.
"""

from __future__ import annotations

import hashlib
import secrets
import unicodedata
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest

from tests.fixtures.app import Api, User

API = "/api/v1"
BASE = "http://testserver"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def share(owner: User, grantee: User, permission: str, **item: int) -> dict[str, Any]:
    r = owner.post(f"{API}/shares", json={**item, "permission": permission, "email": grantee.email})
    assert r.status_code == 201, r.text
    return dict(r.json())


def with_query(url: str, **changes: str) -> str:
    """`url` with some query parameters replaced."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True)) | changes
    return urlunsplit(parts._replace(query=urlencode(query)))


def flip(value: str) -> str:
    """The same string with its last character changed."""
    return value[:-1] + ("A" if value[-1] != "A" else "B")


def stored_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


# -- file names -------------------------------------------------------------------------

NAMES = {
    "dotdot_slash": "../x",
    "slash": "a/b",
    "dot": ".",
    "dotdot": "..",
    "empty": "",
    "nul": "a\x00b",
    "rtl_override": "invoice\u202egnp.exe",
    "300_bytes": "n" * 300,
    "con": "CON",
    "trailing_dot": "report.",
    "trailing_space": "report ",
    "backslash": "..\\..\\x",
}


@pytest.mark.parametrize("name", list(NAMES.values()), ids=list(NAMES))
def test_filenames_are_refused_or_kept_as_data(api: Api, name: str, tmp_path: Path) -> None:
    """Each name is a clean 422 or stored as the document's name, never as a path."""
    ann = api.register()
    before = set(stored_files(tmp_path))
    for create in (
        lambda: ann.upload(name, b"payload"),
        lambda: ann.post(f"{API}/folders", json={"name": name, "parent_id": None}),
        lambda: ann.post(
            f"{API}/uploads",
            json={"filename": name, "size_bytes": 7, "checksum_sha256": sha(b"payload")},
        ),
    ):
        r = create()
        assert r.status_code in (201, 409, 422), r.text
        if r.status_code == 422:
            assert r.json()["code"] == "validation_error"
        elif r.status_code == 201 and "upload_id" not in r.json():
            assert r.json()["name"] == unicodedata.normalize("NFC", name)
    doc = ann.upload(name, b"payload")
    if doc.status_code == 201:
        got = ann.download(doc.json()["id"])
        assert got.status_code == 200 and got.content == b"payload"
        disposition = got.headers["content-disposition"]
        fallback = disposition.split('filename="', 1)[1].split('"', 1)[0]
        assert disposition.startswith("attachment;")
        assert not set(fallback) & set('/\\"\x00\u202e'), disposition
        assert fallback.isascii()
    # Nothing landed outside the store's own layout, whatever the name said.
    for path in set(stored_files(tmp_path)) - before:
        assert path.is_relative_to(tmp_path / "blobs") or path.is_relative_to(tmp_path / "data")
        assert name not in path.name or not name.strip("./\\")


def test_nfc_nfd_twins_clash_as_the_same_name(api: Api) -> None:
    """'café' composed and decomposed are one name: the second is a name_conflict."""
    ann = api.register()
    nfc, nfd = "caf\u00e9.txt", "cafe\u0301.txt"
    first = ann.upload(nfc, b"1")
    assert first.status_code == 201, first.text
    second = ann.upload(nfd, b"2")
    assert second.status_code == 409 and second.json()["code"] == "name_conflict"
    r = ann.post(f"{API}/folders", json={"name": "dir\u00e9", "parent_id": None})
    assert r.status_code == 201
    r = ann.post(f"{API}/folders", json={"name": "dire\u0301", "parent_id": None})
    assert r.status_code == 409 and r.json()["code"] == "name_conflict"
    other = ann.upload("other.txt", b"3").json()
    r = ann.patch(f"{API}/documents/{other['id']}", json={"name": nfd})
    assert r.status_code == 409 and r.json()["code"] == "name_conflict"


# -- active content -------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [b"<html><script>alert(document.cookie)</script></html>", b'<svg onload="alert(1)"/>'],
    ids=["html", "svg"],
)
def test_html_or_svg_declared_as_png_downloads_as_an_attachment(api: Api, body: bytes) -> None:
    """Active content never renders inline from our origin, whatever type was declared."""
    ann = api.register()
    doc = ann.post(
        f"{API}/files", params={"name": "pic.png", "mime_type": "image/png"}, content=body
    )
    assert doc.status_code == 201, doc.text
    link = ann.post(
        f"{API}/shares", json={"document_id": doc.json()["id"], "permission": "VIEW", "link": True}
    ).json()
    via_link = api.client.get(f"{API}/links/{link['token']}/download")
    for got in (ann.download(doc.json()["id"]), api.client.get(via_link.headers["location"])):
        assert got.status_code == 200 and got.content == body
        assert got.headers["content-disposition"].startswith("attachment;")
        assert got.headers["x-content-type-options"] == "nosniff"
        assert (
            "html" not in got.headers["content-type"] and "svg" not in got.headers["content-type"]
        )


# -- signed URLs ----------------------------------------------------------------------


def test_tampered_or_expired_signed_urls_are_refused(api: Api) -> None:
    """A part or download URL with any signed field changed, or past its expiry, is 403."""
    ann = api.register()
    data = b"signed bytes"
    doc = ann.upload("s.txt", data).json()
    url = (
        ann.get(f"{API}/documents/{doc['id']}/download", params={"redirect": "false"})
        .json()["url"]
        .removeprefix(BASE)
    )
    query = dict(parse_qsl(urlsplit(url).query))
    assert api.client.get(url).content == data
    tampered = [
        with_query(url, signature=flip(query["signature"])),
        with_query(url, expires=str(int(query["expires"]) + 3600)),
        with_query(url, content_type="text/html"),
        with_query(url, filename="evil.html"),
        with_query(url, key=flip(query["key"])),
        with_query(url, signature=""),
    ]
    for bad in tampered:
        r = api.client.get(bad)
        assert r.status_code == 403, (bad, r.text)
        assert data not in r.content

    started = ann.post(
        f"{API}/uploads",
        json={"filename": "p.bin", "size_bytes": 4, "checksum_sha256": sha(b"abcd")},
    ).json()
    part = started["parts"][0]
    purl = part["url"].removeprefix(BASE)
    pq = dict(parse_qsl(urlsplit(purl).query))
    path = urlsplit(purl).path
    for bad in (
        with_query(purl, signature=flip(pq["signature"])),
        with_query(purl, expires=str(int(pq["expires"]) + 60)),
        path.rsplit("/", 1)[0] + "/2?" + urlsplit(purl).query,
        path.rsplit("/", 2)[0] + "/" + flip(path.rsplit("/", 2)[1]) + "/1?" + urlsplit(purl).query,
    ):
        r = api.client.put(bad, content=b"abcd", headers=part["headers"])
        assert r.status_code in (403, 404), (bad, r.text)

    # Expired: the server's clock moves past `expires` (the store's clock, not a sleep).
    # The local store signs and checks the URLs (svc.store wraps it: storage.inline).
    store = api.client.app.state.services.store.inner  # type: ignore[attr-defined]
    real_clock = store._clock
    store._clock = lambda: real_clock() + 3 * 24 * 3600
    try:
        r = api.client.get(url)
        assert r.status_code == 403 and "expired" in r.json()["detail"]
        r = api.client.put(purl, content=b"abcd", headers=part["headers"])
        assert r.status_code == 403 and "expired" in r.json()["detail"]
    finally:
        store._clock = real_clock


TEN_BYTES = b"0123456789"


def _start_ten_byte_upload(user: Any) -> dict[str, Any]:
    """`POST /uploads` for TEN_BYTES as p.bin: the upload's answer."""
    started = user.post(
        f"{API}/uploads",
        json={"filename": "p.bin", "size_bytes": 10, "checksum_sha256": sha(TEN_BYTES)},
    )
    assert started.status_code == 201, started.text
    return dict(started.json())


def test_a_part_bigger_than_declared_is_never_stored(api: Api) -> None:
    """Declared 10 bytes, sent 30: refused as it arrives, nothing is kept or charged."""
    ann = api.register()
    data = TEN_BYTES
    started = _start_ten_byte_upload(ann)
    part = started["parts"][0]
    r = api.client.put(part["url"].removeprefix(BASE), content=data * 3, headers=part["headers"])
    assert r.status_code == 413, r.text
    assert r.json()["code"] == "too_large"
    done = ann.post(f"{API}/uploads/{started['upload_id']}/complete", json={})
    assert done.status_code == 422, done.text
    assert ann.me()["used_bytes"] == 0
    children = ann.get(f"{API}/folders/root/children").json()["items"]
    assert children == []
    # The right bytes still complete the upload.
    r = api.client.put(part["url"].removeprefix(BASE), content=data, headers=part["headers"])
    assert r.status_code == 200, r.text
    done = ann.post(f"{API}/uploads/{started['upload_id']}/complete", json={})
    assert done.status_code == 201, done.text
    assert ann.me()["used_bytes"] == 10


def test_completing_someone_elses_upload_is_404(api: Api) -> None:
    """Bob cannot complete or discard Ann's upload, and cannot tell it exists."""
    ann, bob = api.register(), api.register()
    data = b"ann's bytes"
    started = ann.post(
        f"{API}/uploads",
        json={"filename": "a.txt", "size_bytes": len(data), "checksum_sha256": sha(data)},
    ).json()
    part = started["parts"][0]
    etag = api.client.put(part["url"].removeprefix(BASE), content=data, headers=part["headers"])
    parts = [{"part_number": 1, "etag": etag.headers["etag"]}]
    upload = started["upload_id"]
    for r in (
        bob.post(f"{API}/uploads/{upload}/complete", json={"parts": parts}),
        bob.delete(f"{API}/uploads/{upload}"),
        bob.post(f"{API}/uploads/{secrets.token_urlsafe(24)}/complete", json={}),
    ):
        assert r.status_code == 404 and r.json()["code"] == "not_found", r.text
    assert bob.me()["used_bytes"] == 0
    done = ann.post(f"{API}/uploads/{upload}/complete", json={"parts": parts})
    assert done.status_code == 201, done.text
    assert done.json()["owner_id"] == ann.id


def test_the_hash_claim_never_hands_over_bytes(api: Api) -> None:
    """Bob knows the SHA-256 of Ann's file: no skip_upload, wrong bytes 422, never Ann's bytes."""
    ann, bob = api.register(), api.register()
    secret = b"ann's secret contract"
    assert ann.upload("secret.txt", secret).status_code == 201
    claimed = sha(secret)
    started = bob.post(
        f"{API}/uploads",
        json={"filename": "mine.txt", "size_bytes": len(secret), "checksum_sha256": claimed},
    )
    assert started.status_code == 201
    assert started.json()["skip_upload"] is False and started.json()["parts"]
    # Completing without sending any bytes, or with other bytes of the same size: 422.
    no_bytes = bob.post(f"{API}/uploads/{started.json()['upload_id']}/complete", json={})
    assert no_bytes.status_code in (404, 422), no_bytes.text
    again = bob.post(
        f"{API}/uploads",
        json={"filename": "mine2.txt", "size_bytes": len(secret), "checksum_sha256": claimed},
    ).json()
    part = again["parts"][0]
    forged = b"x" * len(secret)
    put = api.client.put(part["url"].removeprefix(BASE), content=forged, headers=part["headers"])
    assert put.status_code == 200
    done = bob.post(
        f"{API}/uploads/{again['upload_id']}/complete",
        json={"parts": [{"part_number": 1, "etag": put.headers["etag"]}]},
    )
    assert done.status_code == 422 and done.json()["code"] == "checksum_mismatch", done.text
    simple = bob.upload("simple.txt", forged, headers={"X-Checksum-SHA256": claimed})
    assert simple.status_code == 422 and simple.json()["code"] == "checksum_mismatch"
    assert bob.me()["used_bytes"] == 0
    for item in bob.get(f"{API}/folders/root/children").json()["items"]:
        assert bob.download(item["id"]).content != secret


def test_resharing_cannot_escalate(api: Api) -> None:
    """An EDIT sharee cannot share on, nor raise anyone's level, their own included."""
    ann, bob, cat = api.register(), api.register(), api.register()
    folder = ann.mkdir("team")
    doc = ann.upload("plan.txt", b"v1", folder=folder["id"]).json()
    folder_share = share(ann, bob, "EDIT", folder_id=folder["id"])
    view_share = share(ann, cat, "VIEW", document_id=doc["id"])
    for body in (
        {"folder_id": folder["id"], "permission": "VIEW", "email": cat.email},
        {"document_id": doc["id"], "permission": "EDIT", "email": cat.email},
        {"document_id": doc["id"], "permission": "VIEW", "link": True},
        {"folder_id": folder["id"], "permission": "EDIT", "link": True},
    ):
        r = bob.post(f"{API}/shares", json=body)
        assert r.status_code == 403, (body, r.text)
    for share_id, permission in ((view_share["id"], "EDIT"), (folder_share["id"], "EDIT")):
        r = bob.patch(f"{API}/shares/{share_id}", json={"permission": permission})
        assert r.status_code in (403, 404), r.text
        assert bob.delete(f"{API}/shares/{share_id}").status_code in (403, 404)
    r = cat.patch(f"{API}/shares/{view_share['id']}", json={"permission": "EDIT"})
    assert r.status_code in (403, 404)
    assert cat.get(f"{API}/documents/{doc['id']}").json()["permission"] == "VIEW"
    assert bob.get(f"{API}/documents/{doc['id']}").json()["permission"] == "EDIT"
    assert bob.get(f"{API}/documents/{doc['id']}/shares").status_code == 403


def test_a_view_user_cannot_restore_or_delete_versions(api: Api) -> None:
    """VIEW (and COMMENT) may read versions; restoring, pinning or deleting one is 403."""
    ann, bob = api.register(), api.register()
    doc = ann.upload("v.txt", b"one").json()
    first = doc["current_version"]["id"]
    r = ann.post(
        f"{API}/documents/{doc['id']}/versions", params={"base_version_id": first}, content=b"two"
    )
    assert r.status_code == 201
    for level in ("VIEW", "COMMENT"):
        share(ann, bob, level, document_id=doc["id"])
        assert bob.get(f"{API}/documents/{doc['id']}/versions").status_code == 200
        for r in (
            bob.post(f"{API}/documents/{doc['id']}/versions/{first}/restore"),
            bob.delete(f"{API}/documents/{doc['id']}/versions/{first}"),
            bob.patch(f"{API}/documents/{doc['id']}/versions/{first}", json={"keep_forever": True}),
            bob.post(f"{API}/documents/{doc['id']}/versions", content=b"three"),
            bob.delete(f"{API}/documents/{doc['id']}"),
        ):
            assert r.status_code == 403 and r.json()["code"] == "forbidden", r.text
    versions = ann.get(f"{API}/documents/{doc['id']}/versions").json()["items"]
    assert [v["version_number"] for v in versions] == [2, 1]
    assert not any(v["keep_forever"] for v in versions)


def test_link_password_brute_force_is_rate_limited(api: Api) -> None:
    """Ten wrong passwords, then 429 for everyone on that link, the right password included."""
    ann = api.register()
    doc = ann.upload("l.txt", b"linked").json()
    link = ann.post(
        f"{API}/shares",
        json={
            "document_id": doc["id"],
            "permission": "VIEW",
            "link": True,
            "password": "right-one",
        },
    ).json()
    url = f"{API}/links/{link['token']}"
    assert api.client.get(url).json()["code"] == "link_password_required"
    for i in range(10):
        r = api.client.get(url, headers={"X-Link-Password": f"guess-{i}"})
        assert r.status_code == 403 and r.json()["code"] == "link_password_invalid"
    for password in ("guess-11", "right-one"):
        r = api.client.get(url, headers={"X-Link-Password": password})
        assert r.status_code == 429 and r.json()["code"] == "rate_limited", r.text
        r = api.client.get(f"{url}/download", headers={"X-Link-Password": password})
        assert r.status_code == 429


def test_guessed_tokens_are_refused(api: Api) -> None:
    """Random, truncated, extended and one-character-off bearer and link tokens: 401 / 404."""
    ann = api.register()
    doc = ann.upload("t.txt", b"tok").json()
    link = ann.post(
        f"{API}/shares", json={"document_id": doc["id"], "permission": "VIEW", "link": True}
    ).json()["token"]
    token = ann.token
    bearer_guesses = [
        secrets.token_urlsafe(32),
        token[:-1],
        token[: len(token) // 2],
        token + "A",
        flip(token),
        token.upper() if token.upper() != token else token.lower(),
        "",
        "*",
        "%",
        token + "%00",
    ]
    for guess in bearer_guesses:
        r = api.client.get(f"{API}/users/me", headers={"Authorization": f"Bearer {guess}"})
        assert r.status_code == 401 and r.json()["code"] == "unauthenticated", guess
    link_guesses = [
        secrets.token_urlsafe(24),
        link[:-1],
        link[:8],
        link + "A",
        flip(link),
        "%25",
        "x" * 300,
    ]
    for guess in link_guesses:
        r = api.client.get(f"{API}/links/{guess}")
        assert r.status_code == 404 and r.json()["code"] == "not_found", guess
    assert api.client.get(f"{API}/links/{link}").status_code == 200
    assert ann.get(f"{API}/users/me").status_code == 200


def test_oversized_json_is_refused_cleanly(api: Api) -> None:
    """A huge or deeply nested JSON body is 413/422/400, never a 500."""
    ann = api.register()
    big = b'{"name": "' + b"x" * (8 * 1024 * 1024) + b'", "parent_id": null}'
    deep = b"[" * 200_000 + b"]" * 200_000
    wide = (
        b'{"name": "w", "parent_id": null, '
        + b", ".join(b'"k%d": 1' % i for i in range(200_000))
        + b"}"
    )
    for body in (big, deep, wide):
        r = ann.post(f"{API}/folders", content=body, headers={"Content-Type": "application/json"})
        assert r.status_code in (400, 413, 422), r.status_code
        assert r.headers["content-type"] == "application/problem+json"
    assert ann.get(f"{API}/folders/root/children").json()["items"] == []


def test_a_query_parameter_given_twice_is_refused_not_half_read(api: Api) -> None:
    """Found by schemathesis: `POST /files?name=a&mime_type=x&mime_type=y` was stored with the
    last value. Every API parameter is single: a repeated one is 422 and nothing is made."""
    ann = api.register()
    r = ann.post(f"{API}/files?name=a.txt&mime_type=text/plain&mime_type=image/png", content=b"x")
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "validation_error" and "mime_type" in r.json()["detail"]
    r = ann.get(f"{API}/folders/root/children?limit=5&limit=6")
    assert r.status_code == 422, r.text
    assert ann.get(f"{API}/folders/root/children").json()["items"] == []
    # Distinct parameters, and one given once, are as before.
    r = ann.post(f"{API}/files?name=a.txt&mime_type=text/plain", content=b"x")
    assert r.status_code == 201 and r.json()["mime_type"] == "text/plain", r.text


def test_nul_characters_in_text_never_cause_a_500(api: Api) -> None:
    """Found by schemathesis on PostgreSQL (its text cannot hold NUL): 422, or kept as data."""
    ann = api.register()
    doc = ann.upload("n.txt", b"x").json()
    for r in (
        api.client.post(f"{API}/auth/login", json={"email": "a\x00@x.com", "password": "p" * 10}),
        api.client.post(
            f"{API}/auth/register",
            json={"email": "nul@example.com", "name": "a\x00b", "password": "p" * 10},
        ),
        ann.post(f"{API}/documents/{doc['id']}/comments", json={"body": "a\x00b"}),
        ann.post(f"{API}/files", params={"name": "m.txt", "mime_type": "text/\x00"}, content=b"x"),
    ):
        assert r.status_code in (201, 401, 422), r.text


def _admits_any_size(
    schema: dict[str, Any], components: dict[str, Any], seen: frozenset[str]
) -> bool:
    """Whether a JSON schema lets a body grow without bound (an array without maxItems, a
    free string without maxLength)."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return name not in seen and _admits_any_size(components[name], components, seen | {name})
    kind = schema.get("type")
    if kind == "array" and "maxItems" not in schema:
        return True
    if kind == "string" and not {"maxLength", "enum", "format"} & set(schema):
        return True
    parts = [schema.get("items") or {}, *schema.get("properties", {}).values()]
    parts += [*schema.get("anyOf", []), *schema.get("oneOf", []), *schema.get("allOf", [])]
    return any(_admits_any_size(p, components, seen) for p in parts if p)


def test_every_json_body_that_can_outgrow_the_limit_documents_413(api: Api) -> None:
    """BodyLimits answers 413 to any JSON body over DOCSTORE_JSON_MAX_BYTES; where the schema
    allows such a body, the operation must say so (schemathesis found complete without it)."""
    spec = api.client.app.openapi()  # type: ignore[attr-defined]
    components = spec["components"]["schemas"]
    missing = []
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            body = op.get("requestBody", {}).get("content", {}).get("application/json")
            if (
                body
                and _admits_any_size(body["schema"], components, frozenset())
                and "413" not in op["responses"]
            ):
                missing.append(f"{method.upper()} {path}")
    assert missing == []


def test_a_parts_list_over_the_json_limit_is_413(api: Api) -> None:
    ann = api.register()
    started = _start_ten_byte_upload(ann)
    parts = [{"part_number": 1, "etag": "x" * 64}] * 20_000
    r = ann.post(f"{API}/uploads/{started['upload_id']}/complete", json={"parts": parts})
    assert r.status_code == 413, r.text
    assert r.json()["code"] == "too_large"


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/folders", {"name": "x", "parent_id": True}),
        ("POST", "/folders", {"name": "x", "parent_id": False}),
        ("PATCH", "/folders/{folder}", {"parent_id": True}),
        ("PATCH", "/documents/{doc}", {"parent_folder_id": True}),
        ("POST", "/uploads", {"filename": "a", "size_bytes": 1, "checksum_sha256": "0" * 64,
                              "folder_id": True}),
        ("POST", "/shares", {"folder_id": True, "permission": "VIEW", "link": True}),
        ("POST", "/shares", {"document_id": True, "permission": "VIEW", "link": True}),
    ],
)  # fmt: skip
def test_a_boolean_is_no_id(api: Api, method: str, path: str, body: dict[str, Any]) -> None:
    """JSON `true` is not the id 1 (pydantic's lax mode would read it so, and the request
    would act on whatever row has id 1: schemathesis made a folder with `parent_id: true`).
    Each such body is a 422 that names the field, and nothing is made."""
    user = api.register()
    folder = user.mkdir("f")["id"]
    doc = user.upload("d.txt", b"d", user.root).json()["id"]
    before = user.get(f"/api/v1/folders/{user.root}/children").json()["items"]
    url = "/api/v1" + path.format(folder=folder, doc=doc)
    r = user.request(method, url, json=body)
    assert r.status_code == 422, r.text
    field = next(k for k, v in body.items() if v is True or v is False)
    assert field in r.text
    assert user.get(f"/api/v1/folders/{user.root}/children").json()["items"] == before
