"""GET /documents/{id} reads the caller's token, user and the document in one statement
(documents.service.get_with_token): authentication must still come first and answer as
every other endpoint does."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import update

from docstore.context import Actor
from docstore.documents import service
from docstore.errors import NotFound
from docstore.users.models import User
from tests.audit.helpers import services
from tests.fixtures.app import Api
from tests.sharing.helpers import share_with
from tests.web.test_session_security import sign_in


def _document(api: Api) -> tuple[Any, int]:
    owner = api.register()
    r = owner.upload("a.txt", b"hello\n")
    assert r.status_code == 201, r.text
    return owner, int(r.json()["id"])


def _get(api: Api, doc_id: int, token: str | None) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return api.client.get(f"/api/v1/documents/{doc_id}", headers=headers)


def test_a_bad_token_is_401_whether_or_not_the_document_exists(api: Api) -> None:
    _, doc_id = _document(api)
    for target in (doc_id, doc_id + 1000):
        for token in ("not-a-token", None):
            r = _get(api, target, token)
            assert r.status_code == 401, r.text
            assert r.json()["code"] == "unauthenticated"


def test_a_good_token_on_a_missing_or_unshared_document_is_404(api: Api) -> None:
    owner, doc_id = _document(api)
    stranger = api.register()
    assert _get(api, doc_id + 1000, owner.token).status_code == 404
    r = _get(api, doc_id, stranger.token)
    assert r.status_code == 404 and "a.txt" not in r.text
    ok = _get(api, doc_id, owner.token)
    assert ok.status_code == 200
    assert ok.json()["permission"] == "OWNER" and ok.headers["ETag"]


def test_a_revoked_token_or_a_disabled_user_is_401(api: Api) -> None:
    owner, doc_id = _document(api)
    assert owner.post("/api/v1/auth/logout").status_code == 204
    assert _get(api, doc_id, owner.token).status_code == 401

    other = api.register()
    r = other.upload("b.txt", b"bye\n")
    other_doc = int(r.json()["id"])
    assert _get(api, other_doc, other.token).status_code == 200
    with services(api).database.transaction() as db:
        db.execute(update(User).where(User.id == other.id).values(is_active=False))
    assert _get(api, other_doc, other.token).status_code == 401


def test_the_session_cookie_reads_a_document(api: Api) -> None:
    owner, doc_id = _document(api)
    assert sign_in(api.client, owner.email).status_code == 303
    r = api.client.get(f"/api/v1/documents/{doc_id}")
    assert r.status_code == 200, r.text
    assert r.json()["name"] == "a.txt"


def test_a_bogus_session_cookie_is_401_before_any_csrf_check(api: Api) -> None:
    """Authentication first, then CSRF: a write with a cookie that is no session is 401,
    and a read with it too (deps.presented_token leaves the CSRF check to after it)."""
    owner, doc_id = _document(api)
    api.client.cookies.set("docstore_session", "not-a-session")
    r = api.client.post("/api/v1/folders", json={"name": "x", "parent_id": None})
    assert r.status_code == 401, r.text
    assert api.client.get(f"/api/v1/documents/{doc_id}").status_code == 401
    api.client.cookies.clear()
    assert sign_in(api.client, owner.email).status_code == 303
    # A real session without the page's CSRF token: the write is refused, the read is not.
    r = api.client.post("/api/v1/folders", json={"name": "x", "parent_id": None})
    assert r.status_code == 403, r.text
    assert api.client.get(f"/api/v1/documents/{doc_id}").status_code == 200


def _orm_read(api: Api, token: str, doc_id: int) -> dict[str, Any]:
    """What the ORM path (`get_with_token` in a read transaction) answers for `token`."""
    with services(api).database.read_transaction() as db:
        out = service.get_with_token(db, Actor(user=None), token, doc_id)
    return out.model_dump(mode="json")


def test_reads_answer_as_the_orm_path_and_a_revoked_share_is_404_at_once(api: Api) -> None:
    """On PostgreSQL the read runs on psycopg directly (db.psycopg_reads), on SQLite through
    the ORM's session: for the owner, a reader of a share two folders up, a stranger and
    a revoked share, both answer what `get_with_token` answers."""
    owner, reader, stranger = api.register(), api.register(), api.register()
    top = owner.mkdir("top")
    inner = owner.mkdir("inner", top["id"])
    r = owner.upload("deep.txt", b"two levels down\n", inner["id"])
    assert r.status_code == 201, r.text
    doc_id = int(r.json()["id"])
    grant = share_with(owner, reader, "VIEW", folder_id=top["id"])
    for user, permission in ((owner, "OWNER"), (reader, "VIEW"), (owner, "OWNER")):
        r = _get(api, doc_id, user.token)
        assert r.status_code == 200, r.text
        assert r.json()["permission"] == permission
        assert r.json() == _orm_read(api, user.token, doc_id)
    for user in (stranger, reader):
        if user is reader:  # revoked: the very next read is refused
            assert owner.delete(f"/api/v1/shares/{grant['id']}").status_code == 204
        r = _get(api, doc_id, user.token)
        assert r.status_code == 404 and "deep.txt" not in r.text
        with pytest.raises(NotFound):
            _orm_read(api, user.token, doc_id)
