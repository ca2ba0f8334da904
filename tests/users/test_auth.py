"""Accounts and bearer tokens over the HTTP API."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from docstore.audit.models import AuditLog
from docstore.db import utcnow
from docstore.users.models import ApiToken, User
from tests.fixtures.app import Api


def test_register_login_me_logout(api: Api) -> None:
    ann = api.register("ann")
    me = ann.me()
    assert me["email"] == "ann@example.com"
    assert me["plan"] == "free"
    assert me["quota_bytes"] == 10 * 1024**3
    assert me["used_bytes"] == 0
    r = api.client.post(
        "/api/v1/auth/login", json={"email": "ANN@example.com", "password": "correct horse"}
    )
    assert r.status_code == 200
    token = r.json()["token"]
    assert token != ann.token
    r = api.client.post("/api/v1/auth/logout", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 204
    r = api.client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401
    assert r.json()["code"] == "unauthenticated"
    # The other token of the same user still works: logout revokes one token.
    assert ann.me()["id"] == me["id"]


def test_wrong_password_and_unknown_email_answer_alike(api: Api) -> None:
    api.register("bob")
    bad_pw = api.client.post(
        "/api/v1/auth/login", json={"email": "bob@example.com", "password": "wrong password"}
    )
    no_user = api.client.post(
        "/api/v1/auth/login", json={"email": "nobody@example.com", "password": "wrong password"}
    )
    assert bad_pw.status_code == no_user.status_code == 401
    assert bad_pw.json()["detail"] == no_user.json()["detail"]
    assert bad_pw.headers["content-type"].startswith("application/problem+json")


def test_failed_login_is_audited_even_though_it_fails(api: Api) -> None:
    api.register("cyd")
    api.client.post(
        "/api/v1/auth/login", json={"email": "cyd@example.com", "password": "nope-nope"}
    )
    db = api.client.app.state.services.database  # type: ignore[attr-defined]
    with db.transaction() as s:
        actions = list(s.scalars(select(AuditLog.action)))
    assert "LOGIN_FAILED" in actions


def test_duplicate_email_is_409(api: Api) -> None:
    api.register("dee")
    r = api.client.post(
        "/api/v1/auth/register",
        json={"email": "Dee@Example.com", "name": "x", "password": "long enough"},
    )
    assert r.status_code == 409
    assert r.json()["code"] == "email_taken"


def test_tokens_garbage_missing_expired_revoked(api: Api) -> None:
    eve = api.register("eve")
    for headers in (
        {},
        {"Authorization": "Bearer garbage"},
        {"Authorization": "Basic abc"},
        {"Authorization": "Bearer "},
    ):
        r = api.client.get("/api/v1/users/me", headers=headers)
        assert r.status_code == 401, headers
        assert r.json()["code"] == "unauthenticated"
    db = api.client.app.state.services.database  # type: ignore[attr-defined]
    with db.transaction() as s:
        s.execute(
            update(ApiToken)
            .where(ApiToken.user_id == eve.id)
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    assert eve.get("/api/v1/users/me").status_code == 401


def test_tokens_are_stored_only_as_hashes(api: Api) -> None:
    fay = api.register("fay")
    db = api.client.app.state.services.database  # type: ignore[attr-defined]
    with db.transaction() as s:
        stored = list(s.scalars(select(ApiToken.token_hash)))
        pw = s.scalar(select(User.password_hash).where(User.id == fay.id))
    assert fay.token not in stored
    assert pw is not None and pw.startswith("$argon2id$")


def test_register_validation(api: Api) -> None:
    for body in (
        {"email": "not-an-email", "name": "x", "password": "long enough"},
        {"email": "a@example.com", "name": "x", "password": "short"},
        {"email": "a@example.com", "name": "", "password": "long enough"},
    ):
        r = api.client.post("/api/v1/auth/register", json=body)
        assert r.status_code == 422, body
        assert r.json()["code"] == "validation_error"
    r = api.client.post(
        "/api/v1/auth/register", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert r.status_code == 400
    assert r.json()["code"] == "bad_request"
