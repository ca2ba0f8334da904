"""Browser fixtures: Debian's Chromium driven by Playwright against the real server process."""

from __future__ import annotations

import os
import re
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests.fixtures.mail import verify_over_http
from tests.fixtures.server import ServerProcess, start_server
from tests.fixtures.services import missing

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page

CHROMIUM = Path(os.environ.get("DOCSTORE_TEST_CHROMIUM", "/usr/bin/chromium"))
# Chromium on this closed network: no sandbox as root, no GPU, and none of the background
# connections to Google's hosts (they are refused here, many at a time).
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "web"
PASSWORD = "correct horse battery"
# The UI needs none of the background jobs (retention, GC, audit sealing): keep them out of
# the browser tests' server so they cannot compete with it for SQLite's write lock.
SERVER_ENV = {"DOCSTORE_RUN_JOBS_IN_SERVER": "false"}
# Console lines that mean the page broke: a CSP refusal or an uncaught script error.
BROKEN = re.compile(r"Content Security Policy|Refused to|Uncaught", re.IGNORECASE)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One headless Chromium per test module. Not per session: Playwright's sync API keeps
    an event loop running in the worker's thread while it lives, and a later test on the
    same worker that calls asyncio.run() would fail with "cannot be called from a running
    event loop"."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        missing("Playwright", f"the playwright package is not installed ({exc})")
        raise
    if not CHROMIUM.exists():
        missing("Chromium", f"{CHROMIUM} does not exist (apt-get install -y chromium)")
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@dataclass
class Web:
    """The server under test and browser contexts on it, each watched for script errors."""

    server: ServerProcess
    browser: Browser
    contexts: list[BrowserContext] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:8])

    def email(self, name: str) -> str:
        """An address no other test on this server uses."""
        return f"{name}-{self.tag}@example.com"

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def api(self) -> str:
        return f"{self.server.url}/api/v1"

    def context(self, **kw: Any) -> BrowserContext:
        """A fresh browser profile (its own cookies), like another person's browser."""
        kw.setdefault("viewport", {"width": 1280, "height": 860})
        ctx = self.browser.new_context(base_url=self.url, accept_downloads=True, **kw)
        ctx.set_default_timeout(30_000)
        self.contexts.append(ctx)
        return ctx

    def page(self, ctx: BrowserContext | None = None, **kw: Any) -> Page:
        """A new tab whose uncaught errors and CSP refusals fail the test."""
        page = (ctx or self.context(**kw)).new_page()
        page.on("pageerror", lambda exc: self.problems.append(f"page error: {exc}"))
        page.on(
            "console",
            lambda msg: (
                self.problems.append(f"console: {msg.text}") if BROKEN.search(msg.text) else None
            ),
        )
        return page

    def register_api(self, name: str, email: str) -> dict[str, Any]:
        """An account made over the HTTP API (for the other party of a flow)."""
        r = httpx.post(
            f"{self.api}/auth/register",
            json={"email": email, "name": name, "password": PASSWORD},
            timeout=30,
        )
        assert r.status_code == 201, r.text
        body = dict(r.json())
        body["user"] = verify_over_http(self.server.url, email)
        return body

    def screenshot(self, page: Page, name: str, *, full_page: bool = False) -> Path:
        """Save a screenshot under artifacts/web/ (what a reviewer looks at)."""
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        if full_page:
            page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=str(path), full_page=full_page)
        return path


@pytest.fixture
def database_url(sqlite_url: str) -> str:
    """The web layer's tests need no second database: SQLite only (overrides the pair)."""
    return sqlite_url


@pytest.fixture(scope="module")
def web_server(
    tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path
) -> Iterator[ServerProcess]:
    """One real `docstore serve` (SQLite, local storage) per test module and worker; each
    test signs up its own people, so tests do not see each other's files."""
    tmp = tmp_path_factory.mktemp("web")
    shutil.copyfile(sqlite_template, tmp / "docstore.db")
    url = f"sqlite:///{tmp / 'docstore.db'}"
    try:
        server = start_server(tmp, url, SERVER_ENV)
    except pytest.fail.Exception:
        # A start-up that outlived the fixture's minute on a saturated machine: once more.
        server = start_server(tmp, url, SERVER_ENV)
    yield server
    server.stop()


@pytest.fixture
def web(web_server: ServerProcess, browser: Browser) -> Iterator[Web]:
    """The server with a browser to drive it; fails the test on any script error."""
    harness = Web(web_server, browser)
    try:
        yield harness
    finally:
        for ctx in harness.contexts:
            ctx.close()
    assert not harness.problems, harness.problems
