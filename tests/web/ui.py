"""What a person does in the web UI, as Playwright steps shared by the browser tests."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

import httpx
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from tests.web.conftest import PASSWORD

if TYPE_CHECKING:
    from playwright.sync_api import Page

MiB = 1024 * 1024


def pattern(size: int) -> bytes:
    """Deterministic content whose period (251) divides no part size: misordered parts show."""
    return (bytes(range(251)) * (size // 251 + 1))[:size]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sign_up(page: Page, name: str, email: str) -> None:
    """Create an account with the sign-up form; lands in My files."""
    page.goto("/register")
    page.get_by_label("Your name").fill(name)
    page.get_by_label("Email", exact=True).fill(email)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()
    page.wait_for_url("**/folders/root")
    page.get_by_role("heading", name="My files").wait_for()


def sign_in(page: Page, email: str, next_path: str | None = None) -> None:
    """Sign in with the form."""
    page.goto("/login" if next_path is None else f"/login?next={next_path}")
    page.get_by_label("Email", exact=True).fill(email)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: "/login" not in url)


def new_folder(page: Page, name: str) -> None:
    """Create a folder in the folder shown."""
    page.get_by_role("button", name="New folder").click()
    dialog = page.get_by_role("dialog", name="New folder")
    dialog.get_by_label("Folder name").fill(name)
    dialog.get_by_role("button", name="Create").click()
    row(page, name).wait_for()


def row(page: Page, name: str) -> Any:
    """The listing row of an item."""
    return page.locator(f'tr[data-name="{name}"]')


def open_item(page: Page, name: str) -> None:
    """Open a folder or document from the listing."""
    row(page, name).get_by_role("link", name=name, exact=True).click()


def row_action(page: Page, name: str, action: str) -> None:
    """Open an item's action menu and pick one."""
    item = row(page, name)
    item.get_by_label(f"Actions for {name}").click()
    item.get_by_role("button", name=action, exact=True).click()


def drop_files(page: Page, files: list[dict[str, Any]]) -> None:
    """Drop files on the drop zone as a person dragging them from the desktop would.

    Each file is {"name", "type", "text"} or {"name", "size"} (content: `pattern(size)`);
    the bytes are made inside the page so 30 MiB need not cross the DevTools socket.
    """
    handle = page.evaluate_handle(
        """(files) => {
            const dt = new DataTransfer();
            for (const f of files) {
                let body;
                if (f.text !== undefined) body = [f.text];
                else {
                    const bytes = new Uint8Array(f.size);
                    for (let i = 0; i < f.size; i++) bytes[i] = i % 251;
                    body = [bytes];
                }
                dt.items.add(new File(body, f.name, { type: f.type || "" }));
            }
            return dt;
        }""",
        files,
    )
    # The page's script attaches its drag handlers after the HTML (and the heading a test
    # waits for) is shown; a drop before that is lost, and nothing is uploaded (seen in CI
    # under load). Its dragenter handler marks the zone: enter until it does, then drop.
    for _ in range(300):  # bounded: 30 s
        page.dispatch_event("#dropzone", "dragenter", {"dataTransfer": handle})
        if "dragging" in (page.get_attribute("#dropzone", "class") or "").split():
            break
        page.wait_for_timeout(100)
    else:
        raise AssertionError("the page never took the dragged files (no drag handler)")
    page.dispatch_event("#dropzone", "drop", {"dataTransfer": handle})


def wait_uploads_done(page: Page, timeout: float = 180_000) -> None:
    """Until every file in the upload panel is done (or failed: the test then says which)."""
    try:
        page.wait_for_function(
            """() => {
                const items = [...document.querySelectorAll('.upload-item')];
                return items.length && items.every(
                    (i) => ['done', 'stored', 'failed'].includes(i.dataset.state));
            }""",
            timeout=timeout,
        )
    except PlaywrightTimeout as exc:
        # Name what was still going: each item's state and text, and the overall line.
        items = page.eval_on_selector_all(
            ".upload-item", "els => els.map(e => [e.dataset.name, e.dataset.state, e.innerText])"
        )
        overall = page.locator("#overall-text").all_inner_texts()
        late = f"uploads not done after {timeout / 1000:.0f} s: {items} {overall}"
        raise AssertionError(late) from exc
    failed = page.locator('.upload-item[data-state="failed"]')
    assert failed.count() == 0, failed.all_inner_texts()


def token_of(web_api: str, email: str, password: str = PASSWORD) -> dict[str, str]:
    """Bearer headers for an account (to check what the UI did over the API)."""
    r = httpx.post(f"{web_api}/auth/login", json={"email": email, "password": password}, timeout=30)
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


def api_upload(
    web_api: str, auth: dict[str, str], name: str, data: bytes, folder: Any = None
) -> Any:
    """Upload a small file over the API (set-up, not the behaviour under test)."""
    params = {"name": name}
    if folder is not None:
        params["folder_id"] = str(folder)
    r = httpx.post(f"{web_api}/files", params=params, headers=auth, content=data, timeout=30)
    assert r.status_code == 201, r.text
    return r.json()


def content_of(web_api: str, auth: dict[str, str], doc_id: int) -> bytes:
    """The current bytes of a document."""
    r = httpx.get(
        f"{web_api}/documents/{doc_id}/download", headers=auth, follow_redirects=True, timeout=60
    )
    assert r.status_code == 200, r.text
    return r.content
