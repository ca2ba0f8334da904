"""The account pages in a real browser: a forgotten password, reset through the mailed link,
then signing in with the new one (the link comes from the server's outbox, as an admin of a
single machine would hand it over)."""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx
import pytest

from tests.fixtures.mail import outbox_link
from tests.fixtures.server import DATABASE_URLS
from tests.web.conftest import PASSWORD, Web

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.xdist_group("browser")]

NEW_PASSWORD = "a brand new passphrase"


def test_forgot_password_mail_reset_and_sign_in(web: Web) -> None:
    email = web.email("ann")
    first = web.register_api("Ann Archer", email)
    page = web.page()
    page.goto("/login")
    page.get_by_role("link", name="Forgot your password?").click()
    page.wait_for_url("**/forgot-password")
    page.get_by_label("Email", exact=True).fill(email)
    page.get_by_role("button", name="Mail me a reset link").click()
    page.get_by_text("a link to reset its password is on its way").wait_for()

    link = outbox_link(DATABASE_URLS[web.url], email, "password_reset")
    parts = urlsplit(link)
    assert link.startswith(web.url) and parts.path == "/reset-password"
    page.goto(f"{parts.path}?{parts.query}")
    page.get_by_role("heading", name="Choose a new password").wait_for()
    page.get_by_label("New password", exact=True).fill("password123")  # a common one: refused
    page.get_by_role("button", name="Set the new password").click()
    assert "too common" in page.get_by_role("alert").inner_text()
    page.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
    web.screenshot(page, "account-reset-password")
    page.get_by_role("button", name="Set the new password").click()
    page.get_by_text("every session was signed out").wait_for()

    # The old session is gone; the old password no longer works, the new one does.
    me = httpx.get(
        f"{web.api}/users/me", headers={"Authorization": f"Bearer {first['token']}"}, timeout=30
    )
    assert me.status_code == 401
    page.get_by_role("link", name="Sign in").click()
    page.get_by_label("Email", exact=True).fill(email)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("alert").filter(has_text="Wrong email or password").wait_for()
    page.get_by_label("Password", exact=True).fill(NEW_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="My files").wait_for()
    web.screenshot(page, "account-signed-in-after-reset")
