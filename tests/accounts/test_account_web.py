"""The web pages of the mailed links, in-process: the unverified notice, the verification
landing page and registering through an invitation (the browser flow of a password reset
is in tests/web/test_account_pages.py)."""

from __future__ import annotations

import re

import httpx

from tests.fixtures.app import Api
from tests.fixtures.mail import token_of
from tests.sharing.helpers import API, share_with, upload

FORM_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def _form_token(r: httpx.Response) -> str:
    found = FORM_TOKEN.search(r.text)
    assert found, r.text
    return found.group(1)


def test_notice_verify_page_and_invitation_sign_up(api: Api) -> None:
    c = api.client
    ann = api.register("ann", verify=False)
    page = c.get("/login")
    r = c.post(
        "/login",
        data={"csrf_token": _form_token(page), "email": ann.email, "password": "correct horse"},
    )
    assert r.status_code == 303
    files = c.get("/folders/root")
    assert 'id="verify-notice"' in files.text and ann.email in files.text
    resent = c.post(
        "/web/verify-email/resend",
        data={"csrf_token": _form_token(files), "next": "/folders/root"},
    )
    assert resent.status_code == 303
    assert resent.headers["location"] == "/folders/root?verification=sent"
    assert "A new link is on its way" in c.get(resent.headers["location"]).text

    link = api.mailed_link(ann.email, "verify_email")
    landing = c.get(link.removeprefix("http://testserver"))
    assert landing.status_code == 200 and "Confirm my address" in landing.text
    assert ann.me()["email_verified"] is False  # opening the page uses nothing
    token = token_of(link)
    done = c.post("/verify-email", data={"csrf_token": _form_token(landing), "token": token})
    assert done.status_code == 200 and f"{ann.email} is confirmed" in done.text
    assert 'id="verify-notice"' not in c.get("/folders/root").text
    landing = c.get(link.removeprefix("http://testserver"))
    again = c.post("/verify-email", data={"csrf_token": _form_token(landing), "token": token})
    assert again.status_code == 400 and "used already" in again.text

    # Zed registers through the invitation: signed in, verified, and the share is his.
    doc = upload(ann, "plan.txt", b"plan")
    share_with(ann, "zed@example.com", "VIEW", document_id=doc["id"])
    c.cookies.clear()
    invite = api.mailed_link("zed@example.com", "invitation").removeprefix("http://testserver")
    page = c.get(invite)
    assert page.status_code == 200 and "zed@example.com" in page.text
    weak = c.post(
        "/invitations/accept",
        data={
            "csrf_token": _form_token(page),
            "token": token_of(invite),
            "name": "Zed",
            "password": "short",
        },
    )
    assert weak.status_code == 422 and "at least 10 characters" in weak.text
    r = c.post(
        "/invitations/accept",
        data={
            "csrf_token": _form_token(weak),
            "token": token_of(invite),
            "name": "Zed",
            "password": "zed's long passphrase",
        },
    )
    assert r.status_code == 303 and r.headers["location"] == "/shared"
    me = c.get(f"{API}/users/me")
    assert me.json()["email"] == "zed@example.com" and me.json()["email_verified"] is True
    assert c.get(f"{API}/documents/{doc['id']}").status_code == 200
    assert c.get(invite).status_code == 400  # used
