"""Proven addresses (API.md "Accounts", the amended pending-share rule): verification links,
invitations, the squatter attack, password reset, email change, the require-verified
setting and admin-vouched accounts. In-process, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from docstore.app import create_app
from docstore.audit.models import AuditLog
from docstore.db import utcnow
from docstore.mail.models import OutboxMail
from docstore.services import Services
from docstore.users.models import AccountToken
from tests.fixtures.app import BASE, Api, User, make_settings
from tests.fixtures.mail import token_of
from tests.sharing.helpers import API, code, share_with, tree, upload

PASSWORD = "a long passphrase"


def _svc(api: Api) -> Services:
    svc: Services = api.client.app.state.services  # type: ignore[attr-defined]
    return svc


def _mails(api: Api, to: str, template: str | None = None) -> list[OutboxMail]:
    with _svc(api).database.transaction() as db:
        stmt = select(OutboxMail).where(OutboxMail.to_address == to)
        if template:
            stmt = stmt.where(OutboxMail.template == template)
        return list(db.scalars(stmt.order_by(OutboxMail.id)))


def _actions(api: Api, user_id: int) -> list[str]:
    with _svc(api).database.transaction() as db:
        rows = db.scalars(select(AuditLog.action).where(AuditLog.user_id == user_id))
        return [str(a) for a in rows]


def _post(api: Api, path: str, body: Any = None, **kw: Any) -> Any:
    return api.client.post(f"{API}{path}", json=body, **kw)


def _as(api: Api, token: str, info: dict[str, Any]) -> User:
    return User(api, token, info)


@pytest.fixture
def admin_api(tmp_path: Path, database_url: str) -> Iterator[Api]:
    settings = make_settings(
        tmp_path, database_url, admin_email="root@example.com", admin_password=PASSWORD
    )
    with TestClient(create_app(settings), base_url=BASE, follow_redirects=False) as client:
        yield Api(client)


def test_sign_up_is_unverified_until_the_single_use_link_is_followed(api: Api) -> None:
    ann = api.register("ann", verify=False)
    assert ann.me()["email_verified"] is False
    assert len(_mails(api, ann.email, "verify_email")) == 1
    token = token_of(api.mailed_link(ann.email, "verify_email"))
    assert code(_post(api, "/auth/verify-email", {"token": "nope"})) == (400, "bad_request")
    r = _post(api, "/auth/verify-email", {"token": token})
    assert r.status_code == 200 and r.json()["email_verified"] is True
    assert ann.me()["email_verified"] is True
    assert code(_post(api, "/auth/verify-email", {"token": token})) == (400, "bad_request")
    assert "EMAIL_VERIFIED" in _actions(api, ann.id)
    with _svc(api).database.transaction() as db:  # stored as its digest only
        assert db.scalar(select(AccountToken).where(AccountToken.token_hash == token)) is None

    # An expired link is refused like a used one; a verified account gets no new mail.
    bob = api.register("bob", verify=False)
    with _svc(api).database.transaction() as db:
        db.execute(update(AccountToken).values(expires_at=utcnow() - timedelta(seconds=1)))
    bob_token = token_of(api.mailed_link(bob.email, "verify_email"))
    assert code(_post(api, "/auth/verify-email", {"token": bob_token})) == (400, "bad_request")
    assert ann.post(f"{API}/auth/verify-email/resend").status_code == 202
    assert len(_mails(api, ann.email)) == 1
    # Resending is limited: 5 an hour, then 429.
    answers = [bob.post(f"{API}/auth/verify-email/resend").status_code for _ in range(6)]
    assert answers == [202] * 5 + [429]
    assert len(_mails(api, bob.email, "verify_email")) == 6
    api.verify_email(bob.email)  # the newest link works
    assert bob.me()["email_verified"] is True


def test_a_squatter_who_registers_a_shared_address_gets_nothing(api: Api) -> None:
    """Issue 22's first paragraph: a share to dave@corp.example went to whoever registered
    that address first. Now it waits for the address to be proven."""
    ann = api.register("ann")
    (payroll,) = tree(ann, "payroll")
    doc = upload(ann, "payroll.csv", b"name,salary\n", payroll["id"])
    share = share_with(ann, "dave@corp.example", "EDIT", folder_id=payroll["id"])
    assert share["kind"] == "email" and share["user_id"] is None
    (invitation,) = _mails(api, "dave@corp.example", "invitation")
    assert "Ann" in invitation.subject and "payroll" in invitation.subject

    r = _post(
        api,
        "/auth/register",
        {"email": "dave@corp.example", "name": "Mallory", "password": PASSWORD},
    )
    assert r.status_code == 201
    mallory = _as(api, r.json()["token"], r.json()["user"])
    assert mallory.get(f"{API}/shared-with-me").json()["items"] == []
    assert code(mallory.get(f"{API}/folders/{payroll['id']}/children")) == (404, "not_found")
    assert code(mallory.get(f"{API}/documents/{doc['id']}")) == (404, "not_found")
    # Nor is the unverified account found as a target by that address.
    again = share_with(ann, "dave@corp.example", "VIEW", document_id=doc["id"])
    assert again["kind"] == "email" and again["user_id"] is None

    # Dave follows the invitation: the mailbox is his, so the account is his (the
    # squatter's password and sessions stop working) and the shares apply.
    link = api.mailed_link("dave@corp.example", "invitation")
    assert link.startswith(f"{BASE}/invitations/accept?token=")
    r = _post(
        api,
        f"/auth/invitations/{token_of(link)}/accept",
        {"name": "Dave", "password": PASSWORD + "!"},
    )
    assert r.status_code == 200, r.text
    dave = _as(api, r.json()["token"], r.json()["user"])
    assert dave.info["email_verified"] is True and dave.info["name"] == "Dave"
    assert code(mallory.get(f"{API}/users/me")) == (401, "unauthenticated")
    items = dave.get(f"{API}/shared-with-me").json()["items"]
    assert {(i["kind"], i["id"], i["permission"]) for i in items} == {
        ("folder", payroll["id"], "EDIT"),
        ("document", doc["id"], "VIEW"),
    }
    assert dave.get(f"{API}/documents/{doc['id']}").json()["permission"] == "EDIT"
    assert code(
        _post(
            api, f"/auth/invitations/{token_of(link)}/accept", {"name": "X", "password": PASSWORD}
        )
    ) == (400, "bad_request")


def test_invitations_make_an_account_or_verify_the_signed_in_one(api: Api) -> None:
    ann = api.register("ann")
    docs = [upload(ann, f"d{i}.txt", b"x") for i in range(3)]
    share_with(ann, "erin@example.com", "COMMENT", document_id=docs[0]["id"])
    token = token_of(api.mailed_link("erin@example.com", "invitation"))
    weak = _post(api, f"/auth/invitations/{token}/accept", {"name": "Erin", "password": "short"})
    assert code(weak) == (422, "validation_error")
    assert code(_post(api, f"/auth/invitations/{token}/accept")) == (422, "validation_error")
    r = _post(api, f"/auth/invitations/{token}/accept", {"name": "Erin", "password": PASSWORD})
    assert r.status_code == 200, r.text
    erin = _as(api, r.json()["token"], r.json()["user"])
    assert erin.me()["email_verified"] is True
    assert erin.get(f"{API}/documents/{docs[0]['id']}").json()["permission"] == "COMMENT"
    # Later shares to a verified address go straight to the account, without invitation.
    direct = share_with(ann, erin, "VIEW", document_id=docs[1]["id"])
    assert direct["kind"] == "user" and direct["user_id"] == erin.id
    assert len(_mails(api, "erin@example.com", "invitation")) == 1

    # Signed in as the invited address: accepting verifies it; as anyone else: 403.
    frank = api.register("frank", verify=False)
    share_with(ann, frank.email, "VIEW", document_id=docs[2]["id"])
    token = token_of(api.mailed_link(frank.email, "invitation"))
    r = erin.post(f"{API}/auth/invitations/{token}/accept")
    assert code(r) == (403, "forbidden")
    r = frank.post(f"{API}/auth/invitations/{token}/accept")
    assert r.status_code == 200 and r.json()["user"]["email_verified"] is True
    assert frank.get(f"{API}/documents/{docs[2]['id']}").status_code == 200
    # A verified account's address cannot be claimed through an invitation with a password.
    share_with(ann, "grace@example.com", "VIEW", document_id=docs[2]["id"])
    grace = api.register("grace")
    token = token_of(api.mailed_link("grace@example.com", "invitation"))
    r = _post(api, f"/auth/invitations/{token}/accept", {"name": "G", "password": PASSWORD})
    assert code(r) == (409, "email_taken")
    assert grace.me()["email_verified"] is True


def test_password_reset_is_single_use_revokes_everything_and_tells_nothing(api: Api) -> None:
    ann = api.register("ann")
    other = api.client.post(
        f"{API}/auth/login", json={"email": ann.email, "password": "correct horse"}
    )
    assert other.status_code == 200
    for email in ("nobody@example.com", ann.email):
        r = _post(api, "/auth/password-reset", {"email": email})
        assert r.status_code == 202 and r.json() == {"status": "accepted"}
    assert _mails(api, "nobody@example.com") == []
    link = api.mailed_link(ann.email, "password_reset")
    assert link.startswith(f"{BASE}/reset-password?token=")
    token = token_of(link)
    weak = _post(api, "/auth/password-reset/confirm", {"token": token, "password": "password123"})
    assert code(weak) == (422, "validation_error")
    r = _post(api, "/auth/password-reset/confirm", {"token": token, "password": PASSWORD})
    assert r.status_code == 204
    assert code(ann.get(f"{API}/users/me")) == (401, "unauthenticated")
    assert (
        api.client.get(
            f"{API}/users/me", headers={"Authorization": f"Bearer {other.json()['token']}"}
        ).status_code
        == 401
    )
    old = api.client.post(
        f"{API}/auth/login", json={"email": ann.email, "password": "correct horse"}
    )
    assert old.status_code == 401
    new = api.client.post(f"{API}/auth/login", json={"email": ann.email, "password": PASSWORD})
    assert new.status_code == 200
    again = _post(api, "/auth/password-reset/confirm", {"token": token, "password": PASSWORD + "2"})
    assert code(again) == (400, "bad_request")
    assert "PASSWORD_RESET" in _actions(api, ann.id)

    # Per account: 3 mails an hour, then still 202 but no more mail (1 sent above).
    for _ in range(4):
        assert _post(api, "/auth/password-reset", {"email": ann.email}).status_code == 202
    assert len(_mails(api, ann.email, "password_reset")) == 3
    # An expired link is refused.
    with _svc(api).database.transaction() as db:
        db.execute(update(AccountToken).values(expires_at=utcnow() - timedelta(seconds=1)))
    token = token_of(api.mailed_link(ann.email, "password_reset"))
    late = _post(api, "/auth/password-reset/confirm", {"token": token, "password": PASSWORD + "3"})
    assert code(late) == (400, "bad_request")


def test_a_reset_link_proves_the_address_of_an_unverified_account(api: Api) -> None:
    ann = api.register("ann")
    doc = upload(ann, "x.txt", b"x")
    share_with(ann, "hal@example.com", "VIEW", document_id=doc["id"])
    hal = api.register("hal", verify=False)
    assert _post(api, "/auth/password-reset", {"email": hal.email}).status_code == 202
    token = token_of(api.mailed_link(hal.email, "password_reset"))
    assert (
        _post(
            api, "/auth/password-reset/confirm", {"token": token, "password": PASSWORD}
        ).status_code
        == 204
    )
    r = api.client.post(f"{API}/auth/login", json={"email": hal.email, "password": PASSWORD})
    hal = _as(api, r.json()["token"], r.json()["user"])
    assert hal.me()["email_verified"] is True
    assert hal.get(f"{API}/documents/{doc['id']}").status_code == 200


def test_email_change_waits_for_the_new_address_to_be_confirmed(api: Api) -> None:
    ann = api.register("ann")
    bob = api.register("bob")
    doc = upload(ann, "x.txt", b"x")
    share_with(ann, "robert@example.com", "EDIT", document_id=doc["id"])
    wrong = bob.post(
        f"{API}/users/me/email", json={"email": "robert@example.com", "password": "nope"}
    )
    assert code(wrong) == (403, "forbidden")
    taken = bob.post(
        f"{API}/users/me/email", json={"email": ann.email, "password": "correct horse"}
    )
    assert code(taken) == (409, "email_taken")
    bad = bob.post(
        f"{API}/users/me/email", json={"email": "not an address", "password": "correct horse"}
    )
    assert code(bad) == (422, "validation_error")
    r = bob.post(
        f"{API}/users/me/email", json={"email": "Robert@Example.com", "password": "correct horse"}
    )
    assert r.status_code == 202
    assert bob.me()["email"] == "bob@example.com"  # not before the link is followed
    (sent,) = _mails(api, "robert@example.com", "email_change")
    assert "bob@example.com" in sent.body_text
    token = token_of(api.mailed_link("robert@example.com", "email_change"))
    r = _post(api, "/auth/verify-email", {"token": token})
    assert r.status_code == 200 and r.json()["email"] == "robert@example.com"
    assert bob.me()["email"] == "robert@example.com" and bob.me()["email_verified"] is True
    assert bob.get(f"{API}/documents/{doc['id']}").json()["permission"] == "EDIT"
    assert code(_post(api, "/auth/verify-email", {"token": token})) == (400, "bad_request")
    login = api.client.post(
        f"{API}/auth/login", json={"email": "robert@example.com", "password": "correct horse"}
    )
    assert login.status_code == 200


def test_require_verified_email_leaves_only_sign_in_verify_and_sign_out(
    tmp_path: Path, database_url: str
) -> None:
    settings = make_settings(tmp_path, database_url, require_verified_email=True)
    with TestClient(create_app(settings), base_url=BASE, follow_redirects=False) as client:
        api = Api(client)
        ann = api.register("ann", verify=False)
        for r in (
            ann.get(f"{API}/shared-with-me"),
            ann.post(f"{API}/folders", json={"name": "x", "parent_id": None}),
            ann.get(f"{API}/documents/1"),
            ann.get(f"{API}/folders/{ann.root}/children"),
        ):
            assert code(r) == (403, "email_unverified"), r.text
        assert ann.get(f"{API}/users/me").json()["email_verified"] is False
        assert ann.post(f"{API}/auth/verify-email/resend").status_code == 202
        api.verify_email(ann.email)
        assert ann.get(f"{API}/shared-with-me").status_code == 200
        assert ann.mkdir("now")["name"] == "now"
        assert ann.post(f"{API}/auth/logout").status_code == 204


def test_admins_vouch_for_addresses_and_mail_reset_links(admin_api: Api) -> None:
    api = admin_api
    r = api.client.post(
        f"{API}/auth/login", json={"email": "root@example.com", "password": PASSWORD}
    )
    root = _as(api, r.json()["token"], r.json()["user"])
    assert root.me()["email_verified"] is True  # the bootstrap admin
    ann = api.register("ann")
    doc = upload(ann, "x.txt", b"x")
    share_with(ann, "ivy@example.com", "VIEW", document_id=doc["id"])
    made = root.post(
        f"{API}/admin/users",
        json={
            "email": "ivy@example.com",
            "name": "Ivy",
            "password": PASSWORD,
            "email_verified": True,
        },
    )
    assert made.status_code == 201 and made.json()["email_verified"] is True
    plain = root.post(
        f"{API}/admin/users", json={"email": "jo@example.com", "name": "Jo", "password": PASSWORD}
    )
    assert plain.json()["email_verified"] is False
    login = api.client.post(
        f"{API}/auth/login", json={"email": "ivy@example.com", "password": PASSWORD}
    )
    ivy = _as(api, login.json()["token"], login.json()["user"])
    assert ivy.get(f"{API}/documents/{doc['id']}").status_code == 200

    assert code(ann.post(f"{API}/admin/users/{ivy.id}/password-reset")) == (403, "forbidden")
    assert code(root.post(f"{API}/admin/users/999999/password-reset")) == (404, "not_found")
    assert root.post(f"{API}/admin/users/{ivy.id}/password-reset").status_code == 202
    token = token_of(api.mailed_link("ivy@example.com", "password_reset"))
    assert (
        _post(
            api, "/auth/password-reset/confirm", {"token": token, "password": PASSWORD + "x"}
        ).status_code
        == 204
    )
    assert code(ivy.get(f"{API}/users/me")) == (401, "unauthenticated")


@pytest.mark.parametrize("sharing_invites", [None, True])
def test_a_closed_server_takes_people_by_an_admins_invitation(
    tmp_path: Path, database_url: str, sharing_invites: bool | None
) -> None:
    """DOCSTORE_OPEN_SIGNUP=false: an admin invites by email; a user's share to an unknown
    address invites only where DOCSTORE_SHARING_INVITES allows it, and waits either way."""
    settings = make_settings(
        tmp_path,
        database_url,
        admin_email="root@example.com",
        admin_password=PASSWORD,
        open_signup=False,
        sharing_invites=sharing_invites,
    )
    with TestClient(create_app(settings), base_url=BASE, follow_redirects=False) as client:
        api = Api(client)
        body = {"email": "kim@example.com", "name": "Kim", "password": PASSWORD}
        assert code(_post(api, "/auth/register", body)) == (403, "forbidden")
        r = _post(api, "/auth/login", {"email": "root@example.com", "password": PASSWORD})
        root = _as(api, r.json()["token"], r.json()["user"])
        made = root.post(f"{API}/admin/users", json={**body, "email_verified": True})
        assert made.status_code == 201, made.text
        ann = _as(api, _login(api, "kim@example.com"), made.json())
        doc = upload(ann, "plan.txt", b"plan")
        share_with(ann, "lee@example.com", "EDIT", document_id=doc["id"])
        invited_by_share = _mails(api, "lee@example.com", "invitation")
        assert len(invited_by_share) == (1 if sharing_invites else 0)

        # Only an admin invites; an address with a verified account is not invited again.
        invite = {"email": "lee@example.com"}
        assert code(ann.post(f"{API}/admin/invitations", json=invite)) == (403, "forbidden")
        assert root.post(f"{API}/admin/invitations", json=invite).status_code == 202
        again = root.post(f"{API}/admin/invitations", json={"email": "kim@example.com"})
        assert code(again) == (409, "conflict")
        mail = _mails(api, "lee@example.com", "admin_invitation")
        assert len(mail) == 1 and "invited you to" in mail[0].subject
        token = token_of(api.mailed_link("lee@example.com", "admin_invitation"))
        r = _post(api, f"/auth/invitations/{token}/accept", {"name": "Lee", "password": PASSWORD})
        assert r.status_code == 200, r.text
        lee = _as(api, r.json()["token"], r.json()["user"])
        assert lee.me()["email_verified"] is True
        # The share that waited for the address applies now.
        assert lee.get(f"{API}/documents/{doc['id']}").json()["permission"] == "EDIT"
        # Single use.
        r = _post(api, f"/auth/invitations/{token}/accept", {"name": "X", "password": PASSWORD})
        assert r.status_code == 400


def _login(api: Api, email: str) -> str:
    r = _post(api, "/auth/login", {"email": email, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return str(r.json()["token"])
