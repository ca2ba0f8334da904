"""The password rule and the account-security forms where people meet them: the web
sign-up form, the web Security page, and `docstore user create` (SQLite and PostgreSQL)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from typer.testing import CliRunner

from docstore.cli.main import app as cli_app
from docstore.config import get_settings
from docstore.db import Database
from docstore.users.models import ApiToken, User
from tests.fixtures.app import Api

PASSWORD = "correct horse"


def _csrf(client: TestClient, path: str) -> str:
    page = client.get(path)
    assert page.status_code == 200, page.text
    match = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert match
    return match.group(1)


def _users(api: Api) -> int:
    database: Database = api.client.app.state.services.database  # type: ignore[attr-defined]
    with database.transaction() as db:
        return int(db.scalar(select(func.count()).select_from(User)) or 0)


def test_sign_up_form_refuses_a_weak_password_with_the_reason(api: Api) -> None:
    token = _csrf(api.client, "/register")
    form = {"name": "Weak", "email": "weak@example.com", "csrf_token": token}
    for password, reason in [
        ("short", "A password needs at least 10 characters."),
        ("iloveyou123", "This password is too common: choose another."),
    ]:
        r = api.client.post("/register", data={**form, "password": password})
        assert r.status_code == 422 and reason in r.text, r.text
    assert _users(api) == 0
    ok = api.client.post("/register", data={**form, "password": "a sound passphrase"})
    assert ok.status_code == 303


def test_security_page_changes_the_password_and_makes_app_passwords(api: Api) -> None:
    ann = api.register("ann")
    client = api.client
    token = _csrf(client, "/login")
    signed = client.post(
        "/login", data={"email": ann.email, "password": PASSWORD, "csrf_token": token}
    )
    assert signed.status_code == 303
    page = client.get("/security")
    assert page.status_code == 200 and "This browser" in page.text
    assert page.headers["cache-control"] == "no-store"
    csrf = _csrf(client, "/security")

    # Without the page's token nothing happens.
    r = client.post("/security/app-passwords", data={"name": "laptop"})
    assert r.status_code == 403 and r.json()["code"] == "csrf_failed"
    made = client.post("/security/app-passwords", data={"name": "laptop", "csrf_token": csrf})
    assert made.status_code == 201
    secret = re.search(r'id="new-app-password" readonly value="([^"]+)"', made.text)
    assert secret and "laptop" in made.text
    bearer = {"Authorization": f"Bearer {secret.group(1)}"}
    assert client.get("/api/v1/users/me", headers=bearer).status_code == 200
    assert secret.group(1) not in client.get("/security").text  # shown once

    change = {"current_password": PASSWORD, "csrf_token": csrf}
    weak = {**change, "new_password": "qwertyuiop", "confirm_password": "qwertyuiop"}
    r = client.post("/security/password", data=weak)
    assert r.status_code == 422 and "New password refused: this password is too common" in r.text
    wrong = {**weak, "current_password": "not the password", "new_password": "new pass phrase"}
    r = client.post("/security/password", data={**wrong, "confirm_password": "new pass phrase"})
    assert r.status_code == 403 and "The current password is not right." in r.text
    assert client.get("/api/v1/users/me", headers=bearer).status_code == 200  # unchanged
    good = {**change, "new_password": "new pass phrase", "confirm_password": "new pass phrase"}
    r = client.post("/security/password", data=good)
    assert (
        r.status_code == 200 and "Password changed. Signed out everywhere else (2 ended)." in r.text
    )
    assert client.get("/api/v1/users/me", headers=bearer).status_code == 401
    assert ann.get("/api/v1/users/me").status_code == 401  # the API token from sign-up too
    assert client.get("/security").status_code == 200  # this browser stays signed in

    # Signing this browser out from the list.
    own = re.search(r'<tr data-session="(\d+)" class="current">', client.get("/security").text)
    assert own
    r = client.post(f"/security/sessions/{own.group(1)}/revoke", data={"csrf_token": csrf})
    assert r.status_code == 303 and r.headers["location"] == "/login"
    assert client.get("/security").status_code == 303


def test_cli_user_create_refuses_a_weak_password(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCSTORE_DATABASE_URL", database_url)
    monkeypatch.setenv("DOCSTORE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("DOCSTORE_SECRET_KEY", "test-secret")
    get_settings.cache_clear()
    try:
        args = ["user", "create", "eve@example.com", "--name", "Eve", "--password"]
        weak = CliRunner().invoke(cli_app, [*args, "1234567890"])
        assert weak.exit_code == 2, weak.output
        assert "The password is refused: this password is too common" in weak.output
        database = Database(database_url)
        try:
            with database.transaction() as db:
                assert db.scalar(select(func.count()).select_from(User)) == 0
                assert db.scalar(select(func.count()).select_from(ApiToken)) == 0
        finally:
            database.dispose()
    finally:
        get_settings.cache_clear()
