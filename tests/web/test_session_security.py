"""The web UI's session cookie, CSRF protection, security headers and scoped name lookups."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from docstore.app import create_app
from tests.fixtures.app import BASE, Api, make_settings

TEMPLATES = Path(__file__).resolve().parents[2] / "src" / "docstore" / "web" / "templates"
PASSWORD = "correct horse"


def form_token(client: TestClient, path: str = "/login") -> str:
    page = client.get(path)
    assert page.status_code == 200
    match = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert match, page.text
    return match.group(1)


def page_csrf(client: TestClient, path: str = "/folders/root") -> str:
    page = client.get(path)
    assert page.status_code == 200, page.text
    match = re.search(r'<meta name="csrf-token" content="([^"]+)">', page.text)
    assert match
    return match.group(1)


def sign_in(client: TestClient, email: str, **extra: str) -> httpx.Response:
    token = form_token(client)
    return client.post(
        "/login", data={"email": email, "password": PASSWORD, "csrf_token": token, **extra}
    )


def test_sign_in_sets_an_http_only_lax_session_cookie(api: Api) -> None:
    user = api.register("ann")
    r = sign_in(api.client, user.email)
    assert r.status_code == 303 and r.headers["location"] == "/"
    cookie = next(c for c in r.headers.get_list("set-cookie") if c.startswith("docstore_session="))
    flags = cookie.lower()
    assert "httponly" in flags and "samesite=lax" in flags and "path=/" in flags
    assert "secure" not in flags  # plain HTTP here; see the HTTPS test
    # The cookie alone reads the API like a bearer token would.
    me = api.client.get("/api/v1/users/me")
    assert me.status_code == 200 and me.json()["email"] == user.email


def test_session_cookie_is_secure_behind_https(tmp_path: Path, sqlite_url: str) -> None:
    settings = make_settings(tmp_path, sqlite_url, public_url="https://docs.example.com")
    https = BASE.replace("http://", "https://")
    with TestClient(create_app(settings), base_url=https, follow_redirects=False) as client:
        api = Api(client)
        user = api.register("ann")
        r = sign_in(client, user.email)
        cookie = next(c for c in r.headers.get_list("set-cookie") if "docstore_session=" in c)
        assert "secure" in cookie.lower()


def test_sign_in_form_needs_its_csrf_token(api: Api) -> None:
    user = api.register("ann")
    form_token(api.client)
    r = api.client.post("/login", data={"email": user.email, "password": PASSWORD})
    assert r.status_code == 403
    assert "form expired" in r.text.lower()
    assert "docstore_session" not in r.headers.get("set-cookie", "")


def test_wrong_password_is_a_readable_message(api: Api) -> None:
    user = api.register("ann")
    token = form_token(api.client)
    r = api.client.post(
        "/login", data={"email": user.email, "password": "nope nope", "csrf_token": token}
    )
    assert r.status_code == 401
    assert "Wrong email or password." in r.text
    assert '"code"' not in r.text and "Traceback" not in r.text


def test_sign_up_errors_are_readable(api: Api) -> None:
    api.register("ann")
    token = form_token(api.client, "/register")
    r = api.client.post(
        "/register",
        data={"name": "Ann", "email": "ann@example.com", "password": PASSWORD, "csrf_token": token},
    )
    assert r.status_code == 409
    assert "already exists" in r.text
    r = api.client.post(
        "/register",
        data={"name": "Zed", "email": "zed@example.com", "password": "short", "csrf_token": token},
    )
    assert r.status_code == 422 and "at least 10 characters" in r.text


def test_sign_in_never_redirects_off_site(api: Api) -> None:
    user = api.register("ann")
    r = sign_in(api.client, user.email, next="//evil.example/steal")
    assert r.headers["location"] == "/"


def test_cookie_writes_need_the_csrf_header(api: Api) -> None:
    user = api.register("ann")
    sign_in(api.client, user.email)
    body = {"name": "Reports", "parent_id": None}
    refused = api.client.post("/api/v1/folders", json=body)
    assert refused.status_code == 403 and refused.json()["code"] == "csrf_failed"
    wrong = api.client.post("/api/v1/folders", json=body, headers={"X-CSRF-Token": "0" * 64})
    assert wrong.status_code == 403
    token = page_csrf(api.client)
    ok = api.client.post("/api/v1/folders", json=body, headers={"X-CSRF-Token": token})
    assert ok.status_code == 201, ok.text
    # Reads need no token; bearer-token clients need none either.
    assert api.client.get(f"/api/v1/folders/{ok.json()['id']}").status_code == 200
    api.client.cookies.clear()
    assert (
        user.post("/api/v1/folders", json={"name": "Other", "parent_id": None}).status_code == 201
    )


def test_one_sessions_csrf_token_is_useless_with_another(api: Api) -> None:
    ann, bob = api.register("ann"), api.register("bob")
    sign_in(api.client, ann.email)
    ann_token = page_csrf(api.client)
    api.client.cookies.clear()
    sign_in(api.client, bob.email)
    r = api.client.post(
        "/api/v1/folders",
        json={"name": "x", "parent_id": None},
        headers={"X-CSRF-Token": ann_token},
    )
    assert r.status_code == 403


def test_sign_out_revokes_the_session(api: Api) -> None:
    user = api.register("ann")
    sign_in(api.client, user.email)
    session = api.client.cookies.get("docstore_session")
    token = page_csrf(api.client)
    assert api.client.post("/logout", data={}).status_code == 403  # no CSRF field
    r = api.client.post("/logout", data={"csrf_token": token})
    assert r.status_code == 303 and r.headers["location"] == "/login"
    assert api.client.cookies.get("docstore_session") is None
    api.client.cookies.set("docstore_session", session or "")
    assert api.client.get("/api/v1/users/me").status_code == 401


def test_pages_send_anonymous_visitors_to_sign_in(api: Api) -> None:
    r = api.client.get("/folders/root")
    assert r.status_code == 303 and r.headers["location"] == "/login?next=%2Ffolders%2Froot"
    assert api.client.get("/").headers["location"] == "/login"
    # A link page is for anyone.
    assert api.client.get("/l/some-token").status_code == 200


@pytest.mark.parametrize("path", ["/login", "/api/v1/users/me", "/static/js/core.js"])
def test_security_headers(api: Api, path: str) -> None:
    r = api.client.get(path)
    csp = r.headers["content-security-policy"]
    directives = {d.split()[0]: d.split()[1:] for d in csp.split("; ")}
    assert directives["script-src"] == ["'self'"]
    assert directives["default-src"] == ["'self'"]
    assert directives["frame-ancestors"] == ["'none'"]
    assert directives["object-src"] == ["'none'"]
    assert "'unsafe-inline'" not in csp and "'unsafe-eval'" not in csp
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "no-referrer"
    assert r.headers["x-frame-options"] == "DENY"


def test_no_inline_script_or_style_in_templates() -> None:
    """The CSP allows neither; a template that used them would break in the browser."""
    for template in TEMPLATES.glob("*.html"):
        text = template.read_text()
        for tag in re.findall(r"<script\b[^>]*>", text):
            assert "src=" in tag or 'type="application/json"' in tag, (template.name, tag)
        assert not re.search(r"\son[a-z]+\s*=", text), template.name
        assert not re.search(r"\sstyle\s*=", text), template.name


def test_name_lookup_only_answers_for_linked_people(api: Api) -> None:
    ann, carol = api.register("ann"), api.register("carol")
    secret = carol.mkdir("Carol's private folder")
    sign_in(api.client, ann.email)
    r = api.client.get(
        "/web/names", params={"users": f"{ann.id},{carol.id}", "folders": str(secret["id"])}
    )
    assert r.status_code == 200
    body = r.json()
    assert body["users"] == {str(ann.id): "Ann"}
    assert body["folders"] == {}
    api.client.cookies.clear()
    assert api.client.get("/web/names", params={"users": str(ann.id)}).status_code == 401


def test_a_download_keeps_its_own_sandbox_policy_and_no_header_twice(api: Api) -> None:
    """The local store's signed download sets `Content-Security-Policy: sandbox` and
    `nosniff` itself (storage.endpoints): the app's security headers add only what a
    response does not have, so the bytes of a user's HTML never run as the app's page."""
    user = api.register()
    r = user.upload("page.html", b"<script>alert(1)</script>", user.root)
    assert r.status_code == 201, r.text
    got = user.download(r.json()["id"])
    assert got.status_code == 200 and got.content == b"<script>alert(1)</script>"
    assert got.headers.get_list("content-security-policy") == ["sandbox"]
    assert got.headers.get_list("x-content-type-options") == ["nosniff"]
    assert got.headers.get_list("x-frame-options") == ["DENY"]
