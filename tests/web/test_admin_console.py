"""The admin console in a real browser against the real server: an administrator finds and
creates accounts, disables one (its token stops working), edits plans, reads the storage
totals, runs a retention dry run and verifies the audit chain; anyone else gets 404.

Screenshots land under artifacts/web/admin-*.png; any script error or CSP refusal fails.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from typing import TYPE_CHECKING

import httpx
import pytest

from tests.fixtures.mail import outbox_link, token_of
from tests.fixtures.server import DATABASE_URLS, ServerProcess, start_server
from tests.web import ui
from tests.web.conftest import PASSWORD, SERVER_ENV, Web

if TYPE_CHECKING:
    from pathlib import Path

    from playwright.sync_api import Page

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.xdist_group("browser")]

ADMIN_EMAIL = "console-admin@example.com"


@pytest.fixture(scope="module")
def web_server(
    tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path
) -> Iterator[ServerProcess]:
    """This module's server has an administrator (the bootstrap account)."""
    tmp = tmp_path_factory.mktemp("web-admin")
    shutil.copyfile(sqlite_template, tmp / "docstore.db")
    env = {**SERVER_ENV, "DOCSTORE_ADMIN_EMAIL": ADMIN_EMAIL, "DOCSTORE_ADMIN_PASSWORD": PASSWORD}
    server = start_server(tmp, f"sqlite:///{tmp / 'docstore.db'}", env)
    yield server
    server.stop()


def toast(page: Page, text: str | re.Pattern[str]) -> None:
    page.locator(".toast").filter(has_text=text).first.wait_for()


def user_row(page: Page, email: str) -> object:
    return page.locator(f'#users tr[data-email="{email}"]')


def test_admin_console_users_plans_storage_audit(web: Web) -> None:
    from playwright.sync_api import expect

    api = web.api
    admin_auth = ui.token_of(api, ADMIN_EMAIL)
    vic_email, new_email = web.email("vic"), web.email("nora")
    web.register_api("Vic Vance", vic_email)
    vic = ui.token_of(api, vic_email)
    # Set-up over the API: the same bytes twice (deduplicated) and a document with an old
    # version that a tight plan's retention would delete.
    same = b"identical bytes " * 64
    ui.api_upload(api, vic, "one.txt", same)
    ui.api_upload(api, vic, "two.txt", same)
    doc = ui.api_upload(api, vic, "draft.txt", b"first draft")
    r = httpx.post(f"{api}/documents/{doc['id']}/versions", headers=vic, content=b"v2", timeout=30)
    assert r.status_code == 201, r.text

    page = web.page()
    ui.sign_in(page, ADMIN_EMAIL)
    page.get_by_role("link", name="Admin").click()
    page.wait_for_url("**/admin/users")
    page.get_by_role("heading", name="Users").wait_for()

    # Search by part of the name: usage and plan are shown.
    page.get_by_label("Search users").fill("VIC VAN")
    page.get_by_role("button", name="Search").click()
    row = page.locator(f'#users tr[data-email="{vic_email}"]')
    expect(page.locator("#users tbody tr")).to_have_count(1)
    assert "of 10.0 GB" in row.inner_text()

    # Create a user with a plan.
    form = page.locator("#create-user")
    form.get_by_label("Email").fill(new_email)
    form.get_by_label("Name").fill("Nora North")
    form.get_by_label("Initial password").fill(PASSWORD)
    form.get_by_label("Plan").select_option("free")
    form.get_by_role("button", name="Create user").click()
    toast(page, f"{new_email} was created")
    nora_row = page.locator(f'#users tr[data-email="{new_email}"]')
    nora_row.wait_for()
    nora = ui.token_of(api, new_email)
    me = httpx.get(f"{api}/users/me", headers=nora, timeout=30)
    assert me.status_code == 200
    # "Address verified" is ticked by default: the admin vouches for the address.
    assert me.json()["email_verified"] is True
    nora_row.locator(".badge", has_text="Verified").wait_for()
    web.screenshot(page, "admin-users", full_page=True)

    # Reset by mail: the user gets a single-use link; their password works until it is used.
    nora_row.get_by_role("button", name="Reset password").click()
    page.get_by_role("dialog").get_by_role("button", name="Send the link").click()
    toast(page, f"A password-reset link was mailed to {new_email}")
    link = outbox_link(DATABASE_URLS[web.url.rstrip("/")], new_email, "password_reset")
    reset = {"token": token_of(link), "password": "a brand new passphrase"}
    r = httpx.post(f"{api}/auth/password-reset/confirm", json=reset, timeout=30)
    assert r.status_code == 204, r.text
    assert httpx.get(f"{api}/users/me", headers=nora, timeout=30).status_code == 401
    nora = ui.token_of(api, new_email, password=reset["password"])

    # Disable: the new account's token fails at its next request; enable brings it back.
    nora_row.get_by_role("button", name="Disable").click()
    page.get_by_role("dialog").get_by_role("button", name="Disable").click()
    toast(page, f"{new_email} is disabled")
    nora_row.locator(".badge", has_text="Disabled").wait_for()
    assert httpx.get(f"{api}/users/me", headers=nora, timeout=30).status_code == 401
    login = {"email": new_email, "password": reset["password"]}
    assert httpx.post(f"{api}/auth/login", json=login, timeout=30).status_code == 401
    web.screenshot(page, "admin-user-disabled")
    nora_row.get_by_role("button", name="Enable").click()
    toast(page, f"{new_email} is enabled")
    assert httpx.get(f"{api}/users/me", headers=nora, timeout=30).status_code == 200

    # Plans: create one, then edit it through its row.
    page.get_by_role("navigation", name="Administration").get_by_role("link", name="Plans").click()
    page.wait_for_url("**/admin/plans")
    plan_form = page.locator("#plan-form")
    plan_form.get_by_label("Name").fill("tight")
    plan_form.get_by_label("Quota (GiB)").fill("2")
    plan_form.get_by_label("Versions kept").fill("5")
    plan_form.get_by_label("Retention (days)").fill("7")
    plan_form.get_by_role("button", name="Save plan").click()
    toast(page, "Plan tight saved")
    page.locator('#plans tr[data-name="tight"]').get_by_role("button", name="Edit tight").click()
    assert plan_form.get_by_label("Quota (GiB)").input_value() == "2"
    plan_form.get_by_label("Versions kept").fill("1")
    plan_form.get_by_label("Retention (days)").fill("0")
    plan_form.get_by_role("button", name="Save plan").click()
    toast(page, "Plan tight saved")
    page.locator('#plans tr[data-name="tight"]', has_text="0 days").wait_for()
    web.screenshot(page, "admin-plans", full_page=True)

    # Change Vic's plan from the users list.
    page.goto("/admin/users")
    page.get_by_label("Search users").fill(vic_email)
    page.get_by_role("button", name="Search").click()
    row.get_by_label(f"Plan of {vic_email}").select_option("tight")
    toast(page, f"{vic_email} is now on plan tight")
    me = httpx.get(f"{api}/users/me", headers=vic, timeout=30).json()
    assert (me["plan"], me["quota_bytes"]) == ("tight", 2 * 1024**3)
    # And its quota, through the row's dialog.
    row.get_by_role("button", name="Quota").click()
    dialog = page.get_by_role("dialog", name=f"Quota of {vic_email}")
    dialog.get_by_label("Quota (GiB)").fill("3")
    dialog.get_by_role("button", name="Save").click()
    toast(page, f"Quota of {vic_email} set to 3.0 GB")
    me = httpx.get(f"{api}/users/me", headers=vic, timeout=30).json()
    assert (me["plan"], me["quota_bytes"]) == ("tight", 3 * 1024**3)

    # Storage: the totals show what deduplication saved; the dry run lists the old version.
    page.get_by_role("navigation", name="Administration").get_by_role(
        "link", name="Storage"
    ).click()
    page.wait_for_url("**/admin/storage")
    saved = page.locator('[data-stat="dedup"] .stat-value')
    saved.filter(has_text="1.0 KB").wait_for()
    totals = httpx.get(f"{api}/admin/storage", headers=admin_auth, timeout=30).json()
    assert totals["dedup_saved_bytes"] == len(same)
    page.locator('#job-runs tr[data-job="fsck"]', has_text="never").wait_for()
    page.get_by_role("button", name="Dry run").click()
    result = page.locator("#retention-result")
    result.get_by_text("Would delete 1 versions of 1 documents").wait_for()
    assert "draft.txt" in result.locator("tbody tr").first.inner_text()
    assert "v1" in result.locator("tbody tr").first.inner_text()
    web.screenshot(page, "admin-storage", full_page=True)
    # A dry run deleted nothing.
    versions = httpx.get(f"{api}/documents/{doc['id']}/versions", headers=vic, timeout=30)
    assert len(versions.json()["items"]) == 2

    # Audit: verify the chain now; the export links serve the log.
    page.get_by_role("navigation", name="Administration").get_by_role("link", name="Audit").click()
    page.wait_for_url("**/admin/audit")
    page.get_by_text("The chain has not been verified yet.").wait_for()
    page.get_by_role("button", name="Verify now").click()
    page.locator("#audit-status .badge", has_text="Intact").wait_for()
    href = page.get_by_role("link", name="Export CSV").get_attribute("href")
    assert href == "/api/v1/admin/audit/export?format=csv"
    with page.expect_download() as download:
        page.get_by_role("link", name="Export JSON Lines").click()
    path = download.value.path()
    assert path is not None and b'"action":"LOGIN"' in path.read_bytes()
    web.screenshot(page, "admin-audit")


def test_non_admins_get_404_and_no_link(web: Web) -> None:
    email = web.email("pat")
    web.register_api("Pat Plain", email)
    page = web.page()
    ui.sign_in(page, email)
    page.get_by_role("heading", name="My files").wait_for()
    assert page.get_by_role("link", name="Admin").count() == 0
    for path in ("/admin", "/admin/users", "/admin/plans", "/admin/storage", "/admin/audit"):
        response = page.goto(path)
        assert response is not None and response.status == 404, path
    page.get_by_role("heading", name="This page is not available").wait_for()
    web.screenshot(page, "admin-404-for-non-admin")
    # Signed out: the sign-in page, as for any other page.
    anon = web.page()
    anon.goto("/admin/storage")
    anon.wait_for_url(re.compile(r"/login\?next="))
