"""The Security page in Chromium: change the password, make an app password (shown once),
revoke it; the screenshot is artifacts/web/11-security.png."""

from __future__ import annotations

import httpx
import pytest

from tests.web import ui
from tests.web.conftest import PASSWORD, Web

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.xdist_group("browser")]


def _me(web: Web, token: str) -> int:
    auth = {"Authorization": f"Bearer {token}"}
    return httpx.get(f"{web.api}/users/me", headers=auth, timeout=30).status_code


def test_security_page_password_app_password_and_revoke(web: Web) -> None:
    email = web.email("ann")
    api_token = web.register_api("Ann Archer", email)["token"]
    page = web.page()
    ui.sign_in(page, email)
    page.get_by_role("link", name="Security", exact=True).click()
    page.get_by_role("heading", name="Security", exact=True).wait_for()

    page.get_by_label("Current password").fill(PASSWORD)
    page.get_by_label("New password", exact=True).fill("a fresh pass phrase")
    page.get_by_label("New password again").fill("a fresh pass phrase")
    page.get_by_role("button", name="Change password").click()
    page.get_by_role("status").filter(has_text="Password changed.").wait_for()
    assert _me(web, api_token) == 401  # the other session (the API's) ended

    page.get_by_label("Name", exact=True).fill("laptop")
    page.get_by_role("button", name="Create app password").click()
    shown = page.get_by_label("New app password")
    secret = shown.input_value()
    assert len(secret) >= 40 and _me(web, secret) == 200
    row = page.locator("table[aria-label='App passwords'] tbody tr")
    assert row.count() == 1 and "laptop" in row.first.inner_text()
    assert "This browser" in page.locator("tr.current").inner_text()
    web.screenshot(page, "11-security", full_page=True)

    page.get_by_role("button", name="Revoke app password laptop").click()
    page.get_by_text("No app passwords yet.").wait_for()
    assert page.get_by_label("New app password").count() == 0  # shown once only
    assert _me(web, secret) == 401
