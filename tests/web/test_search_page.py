"""Search in the web UI, in a real browser: the header's box on every page ("/" focuses
it), the results page with highlighted names, filters, and keyboard navigation."""

from __future__ import annotations

import re

import pytest

from tests.web import ui
from tests.web.conftest import Web

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.xdist_group("browser")]


def test_search_box_results_filters_and_keyboard(web: Web) -> None:
    email = web.email("seeker")
    page = web.page()
    ui.sign_up(page, "Seeker", email)
    auth = ui.token_of(web.api, email)
    doc = ui.api_upload(web.api, auth, "Quarterly-Report-2026.txt", b"numbers")
    ui.api_upload(web.api, auth, "<b>Budget & plan.txt", b"plan")

    page.goto("/trash")  # the box is in the header of every page
    page.keyboard.press("/")
    box = page.get_by_role("searchbox", name="Search your files")
    assert box.evaluate("el => el === document.activeElement")
    box.fill("quarterly rep")
    box.press("Enter")
    page.wait_for_url(re.compile(r"/search\?q=quarterly"))
    link = page.get_by_role("link", name="Quarterly-Report-2026.txt")
    link.wait_for()
    assert page.locator(".search-hit mark").first.inner_text() == "Quarterly"
    web.screenshot(page, "search-results")

    # Names are shown as text, never as markup.
    page.goto("/search?q=budget")
    hit = page.locator(".search-hit").first
    hit.wait_for()
    assert "<b>Budget & plan.txt" in hit.inner_text()
    assert page.locator(".search-hit b").count() == 0

    # A filter that excludes everything says so.
    page.goto("/search?q=budget&kind=folder")
    page.get_by_text("Nothing found.").wait_for()
    assert page.locator('select[name="kind"]').input_value() == "folder"

    # ↓ moves to the first result, Enter opens it.
    page.goto("/search?q=quarterly")
    link = page.get_by_role("link", name="Quarterly-Report-2026.txt")
    link.wait_for()
    page.locator("body").click(position={"x": 5, "y": 300})
    page.keyboard.press("ArrowDown")
    assert link.evaluate("el => el === document.activeElement")
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/documents/{doc['id']}")
