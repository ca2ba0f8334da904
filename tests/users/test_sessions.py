"""Sessions, app passwords and the password change (API.md "Accounts"), in-process on SQLite
and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select, update

from docstore.app import create_app
from docstore.db import Database, utcnow
from docstore.users.models import ApiToken, User
from tests.fixtures.app import BASE, Api, make_settings
from tests.fixtures.databases import executed

PASSWORD = "correct horse"
NEW_PASSWORD = "a brand new passphrase"


def _database(api: Api) -> Database:
    database: Database = api.client.app.state.services.database  # type: ignore[attr-defined]
    return database


def _sessions(user: Any) -> list[dict[str, Any]]:
    r = user.get("/api/v1/users/me/sessions")
    assert r.status_code == 200, r.text
    assert r.json()["next_cursor"] is None
    return list(r.json()["items"])


def _login(api: Api, email: str, password: str = PASSWORD, ua: str = "pytest") -> Any:
    body = {"email": email, "password": password}
    return api.client.post("/api/v1/auth/login", json=body, headers={"User-Agent": ua})


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_sessions_list_app_passwords_and_revoke_at_once(api: Api) -> None:
    ann, bob = api.register("ann"), api.register("bob")
    laptop = _login(api, ann.email, ua="Laptop Firefox")
    assert laptop.status_code == 200
    made = ann.post("/api/v1/users/me/app-passwords", json={"name": " davx5 phone "})
    assert made.status_code == 201, made.text
    app = made.json()
    assert app["name"] == "davx5 phone" and len(app["token"]) >= 40

    listed = {s["id"]: s for s in _sessions(ann)}
    assert len(listed) == 3
    current = [s for s in listed.values() if s["current"]]
    assert len(current) == 1 and current[0]["kind"] == "session"
    by_ua = {s["user_agent"]: s for s in listed.values()}
    assert by_ua["Laptop Firefox"]["kind"] == "session"
    assert by_ua["Laptop Firefox"]["ip_address"] == "testclient"
    assert by_ua["Laptop Firefox"]["last_used_at"] is not None
    app_row = listed[app["id"]]
    assert app_row["kind"] == "app_password" and app_row["name"] == "davx5 phone"
    assert app_row["last_used_at"] is None and app_row["expires_at"] is None
    assert "token" not in app_row and "token_hash" not in app_row
    # Stored hashed: the secret is nowhere in the table.
    with _database(api).transaction() as db:
        hashes = set(db.scalars(select(ApiToken.token_hash)))
    assert app["token"] not in hashes

    # The app password is a Bearer token; its use shows in the list.
    assert api.client.get("/api/v1/users/me", headers=_bearer(app["token"])).status_code == 200
    assert {s["id"]: s for s in _sessions(ann)}[app["id"]]["last_used_at"] is not None

    # Another account's session: 404, and it keeps working.
    assert bob.delete(f"/api/v1/users/me/sessions/{app['id']}").status_code == 404
    assert api.client.get("/api/v1/users/me", headers=_bearer(app["token"])).status_code == 200
    assert bob.delete("/api/v1/users/me/sessions/999999999").status_code == 404

    # Revoked: the very next request is refused; a second revoke finds nothing.
    assert ann.delete(f"/api/v1/users/me/sessions/{app['id']}").status_code == 204
    assert api.client.get("/api/v1/users/me", headers=_bearer(app["token"])).status_code == 401
    assert ann.delete(f"/api/v1/users/me/sessions/{app['id']}").status_code == 404
    laptop_id = by_ua["Laptop Firefox"]["id"]
    assert ann.delete(f"/api/v1/users/me/sessions/{laptop_id}").status_code == 204
    laptop_token = laptop.json()["token"]
    assert api.client.get("/api/v1/users/me", headers=_bearer(laptop_token)).status_code == 401
    assert [s["current"] for s in _sessions(ann)] == [True]
    # Revoking one's own session is a sign-out.
    own = _sessions(ann)[0]["id"]
    assert ann.delete(f"/api/v1/users/me/sessions/{own}").status_code == 204
    assert ann.get("/api/v1/users/me").status_code == 401


def test_app_password_names_are_validated(api: Api) -> None:
    ann = api.register("ann")
    for name in ["", "   ", "x" * 101, "line\u2028break", "tab\there", "bidi\u202eoverride"]:
        r = ann.post("/api/v1/users/me/app-passwords", json={"name": name})
        assert r.status_code == 422, name
        assert r.json()["code"] == "validation_error"
    assert [s["kind"] for s in _sessions(ann)] == ["session"]


def test_change_password_ends_other_sessions_and_app_passwords(api: Api) -> None:
    ann, bob = api.register("ann"), api.register("bob")
    other = _login(api, ann.email).json()["token"]
    app = ann.post("/api/v1/users/me/app-passwords", json={"name": "nas"}).json()["token"]

    wrong = {"current_password": "not my password", "new_password": NEW_PASSWORD}
    r = ann.post("/api/v1/users/me/password", json=wrong)
    assert r.status_code == 403 and r.json()["code"] == "current_password_invalid"
    weak = {"current_password": PASSWORD, "new_password": "password123"}
    r = ann.post("/api/v1/users/me/password", json=weak)
    assert r.status_code == 422 and r.json()["code"] == "validation_error"
    assert "too common" in r.text
    # Neither refusal changed anything.
    for token in (other, app):
        assert api.client.get("/api/v1/users/me", headers=_bearer(token)).status_code == 200
    assert _login(api, ann.email).status_code == 200

    good = {"current_password": PASSWORD, "new_password": NEW_PASSWORD}
    assert ann.post("/api/v1/users/me/password", json=good).status_code == 204
    assert ann.get("/api/v1/users/me").status_code == 200  # the caller's token stays
    for token in (other, app):
        assert api.client.get("/api/v1/users/me", headers=_bearer(token)).status_code == 401
    assert [s["current"] for s in _sessions(ann)] == [True]
    assert _login(api, ann.email).status_code == 401
    assert _login(api, ann.email, NEW_PASSWORD).status_code == 200
    assert bob.get("/api/v1/users/me").status_code == 200  # nobody else's sessions

    entries = ann.get("/api/v1/audit", params={"user_id": ann.id}).json()["items"]
    actions = [e["action"] for e in entries]
    assert actions.count("PASSWORD_CHANGE") == 1 and "LOGIN_FAILED" in actions


def test_wrong_current_passwords_are_throttled_like_sign_ins(
    tmp_path: Path, database_url: str
) -> None:
    settings = make_settings(
        tmp_path, database_url, login_free_failures_per_account=0, login_account_backoff_seconds=60
    )
    with TestClient(create_app(settings), base_url=BASE, follow_redirects=False) as client:
        api = Api(client)
        ann = api.register("ann")
        wrong = {"current_password": "guess number one", "new_password": NEW_PASSWORD}
        assert ann.post("/api/v1/users/me/password", json=wrong).status_code == 403
        # Blocked now, before the password is checked: even the right one waits.
        right = {"current_password": PASSWORD, "new_password": NEW_PASSWORD}
        r = ann.post("/api/v1/users/me/password", json=right)
        assert r.status_code == 429 and r.json()["code"] == "rate_limited"
        assert int(r.headers["Retry-After"]) >= 1
        # And so is a sign-in to the account: one counter for both.
        assert _login(api, ann.email).status_code == 429
        with _database(api).transaction() as db:
            user = db.scalars(select(User).where(User.email == ann.email)).one()
            assert user.password_hash.startswith("$argon2")
        assert ann.get("/api/v1/users/me").status_code == 200


def test_last_use_is_written_at_most_once_a_minute_and_reads_stay_write_free(api: Api) -> None:
    ann = api.register("ann")
    database = _database(api)
    token_id = _sessions(ann)[0]["id"]
    sent = executed(database)
    children = f"/api/v1/folders/{ann.root}/children"

    def touches() -> list[str]:
        return [s for s in sent if s.upper().startswith("UPDATE API_TOKENS")]

    # Just signed in: the last use is fresh, a read writes nothing.
    assert ann.get(children).status_code == 200
    assert ann.get(f"/api/v1/folders/{ann.root}").status_code == 200
    assert touches() == []

    stale = utcnow() - timedelta(minutes=5)
    for path in (children, "/api/v1/users/me"):  # a read request, then a DB-dependency one
        with database.transaction() as db:
            db.execute(update(ApiToken).where(ApiToken.id == token_id).values(last_used_at=stale))
        sent.clear()
        assert ann.get(path).status_code == 200
        assert len(touches()) == 1, path
        with database.transaction() as db:
            last = db.get_one(ApiToken, token_id).last_used_at
        assert last is not None and last > stale + timedelta(minutes=4)
        sent.clear()
        assert ann.get(path).status_code == 200
        assert touches() == [], path
