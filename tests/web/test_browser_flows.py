"""The web UI in a real browser against the real server: the flows people use it for.

Every flow ends with a screenshot under artifacts/web/ and fails on any script error or
Content-Security-Policy refusal in the page (see conftest.Web).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests.fixtures.services import missing
from tests.web import ui
from tests.web.conftest import SERVER_ENV, Web

if TYPE_CHECKING:
    from playwright.sync_api import Page, Request, Route

# One worker runs every browser flow (scripts/test uses --dist loadgroup): one server and one
# Chromium instead of one per worker, on a 2-core machine.
pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.xdist_group("browser")]

SHA256_VECTORS = {
    "": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "abc": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
    "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq": (
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
    ),
}


def require_routes(web: Web, *routes: tuple[str, str]) -> None:
    """`missing()` (skip, or fail under CI=true), naming the endpoint, when the server does
    not have what this flow needs."""
    paths = httpx.get(f"{web.api}/openapi.json", timeout=30).json()["paths"]
    for method, path in routes:
        if method.lower() not in paths.get(path, {}):
            missing(f"the endpoint {method} {path}", "not on this server yet")


def expect_toast(page: Page, text: str | re.Pattern[str]) -> None:
    page.locator(".toast").filter(has_text=text).first.wait_for()


def test_upload_three_files_by_drag_and_drop(web: Web) -> None:
    """Register, create a folder, drop three files (one of 30 MiB): progress reaches 100%,
    parts go 3 at a time with a failed part retried, and the files are listed."""
    require_routes(
        web, ("POST", "/api/v1/uploads"), ("POST", "/api/v1/uploads/{upload_id}/complete")
    )
    page = web.page()
    ui.sign_up(page, "Ann Archer", web.email("ann"))

    # A readable error, never problem JSON: the second folder of the same name is refused.
    ui.new_folder(page, "Projects")
    page.get_by_role("button", name="New folder").click()
    dialog = page.get_by_role("dialog", name="New folder")
    dialog.get_by_label("Folder name").fill("Projects")
    dialog.get_by_role("button", name="Create").click()
    error = dialog.get_by_role("alert")
    error.wait_for()
    assert "already exists" in error.inner_text()
    assert "{" not in error.inner_text()
    dialog.get_by_role("button", name="Cancel").click()

    ui.open_item(page, "Projects")
    page.get_by_role("heading", name="Projects").wait_for()

    # Watch the part PUTs: how many run at once, and make the first try of part 2 fail.
    inflight: set[str] = set()
    peak = 0
    failed_once: list[str] = []
    puts: list[str] = []

    def on_request(request: Request) -> None:
        nonlocal peak
        if request.method == "PUT":
            puts.append(request.url)
            inflight.add(request.url)
            peak = max(peak, len(inflight))

    def on_done(request: Request) -> None:
        inflight.discard(request.url)

    def flaky_part(route: Route) -> None:
        if "/2?" in route.request.url and not failed_once:
            failed_once.append(route.request.url)
            route.fulfill(status=503, body="try again")
            return
        route.continue_()

    page.on("request", on_request)
    page.on("requestfinished", on_done)
    page.on("requestfailed", on_done)
    page.route(re.compile(r".*/storage/parts/.*"), flaky_part)

    big = 30 * ui.MiB
    ui.drop_files(
        page,
        [
            {"name": "dataset.bin", "size": big},
            {"name": "notes.txt", "type": "text/plain", "text": "first line\nsecond line\n"},
            {"name": "README.md", "type": "text/markdown", "text": "# Hello\n\nA **tiny** note.\n"},
        ],
    )
    ui.wait_uploads_done(page)
    overall = page.locator("#overall")
    assert overall.evaluate("e => e.value") == 100
    assert "3 of 3 files · 100%" in page.locator("#overall-text").inner_text()
    for name in ("dataset.bin", "notes.txt", "README.md"):
        ui.row(page, name).wait_for()
        item = page.locator(f'.upload-item[data-name="{name}"]')
        assert item.locator("progress").evaluate("e => e.value") == 100
    assert "30.0 MB" in ui.row(page, "dataset.bin").inner_text()
    web.screenshot(page, "01-upload-drag-and-drop")

    # 30 MiB in 8 MiB parts is 4 parts: 3 in flight at once, part 2 sent twice.
    assert failed_once, "the flaky part was never sent"
    assert peak == 3, f"{peak} parts were in flight at once"
    assert sum("/2?" in u for u in puts) == 2, puts
    # What the browser hashed in its worker is what the server stored.
    auth = ui.token_of(web.api, web.email("ann"))
    projects = next(
        i
        for i in httpx.get(f"{web.api}/folders/root/children", headers=auth).json()["items"]
        if i["name"] == "Projects"
    )
    items = httpx.get(f"{web.api}/folders/{projects['id']}/children", headers=auth).json()["items"]
    stored = {i["name"]: i for i in items}
    doc = httpx.get(f"{web.api}/documents/{stored['dataset.bin']['id']}", headers=auth).json()
    assert doc["current_version"]["checksum_sha256"] == ui.sha256(ui.pattern(big))
    assert doc["size_bytes"] == big

    # The same bytes again are "already stored": no part is sent.
    before = len(puts)
    ui.drop_files(
        page,
        [
            {
                "name": "README copy.md",
                "type": "text/markdown",
                "text": "# Hello\n\nA **tiny** note.\n",
            }
        ],
    )
    ui.wait_uploads_done(page)
    status = page.locator('.upload-item[data-name="README copy.md"] .upload-status')
    assert "Already stored" in status.inner_text()
    assert len(puts) == before

    # The worker's SHA-256 agrees with the standard test vectors.
    got = page.evaluate(
        """async (vectors) => {
            const { Sha256 } = await import('/static/js/sha256.js');
            const out = {};
            const bytes = (s) => new TextEncoder().encode(s);
            for (const s of vectors) out[s] = new Sha256().update(bytes(s)).hex();
            return out;
        }""",
        list(SHA256_VECTORS),
    )
    assert got == SHA256_VECTORS

    # The quota meter follows what was stored.
    page.reload()
    assert "30.0 MB of 10.0 GB used" in page.locator("#quota").inner_text()

    # On a phone-sized screen the same page still works.
    phone = web.page(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    ui.sign_in(phone, web.email("ann"), f"/folders/{projects['id']}")
    ui.row(phone, "dataset.bin").wait_for()
    phone.get_by_role("button", name="Upload", exact=True).wait_for()
    width = phone.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page is {width}px wide on a 390px screen"
    web.screenshot(phone, "01b-folder-on-a-phone")


def test_edit_text_see_versions_and_restore_v1(web: Web) -> None:
    """Open a text file, edit and save it: two versions in the history; restore v1."""
    user = web.register_api("Ann Archer", web.email("ann"))
    auth = {"Authorization": f"Bearer {user['token']}"}
    doc = ui.api_upload(web.api, auth, "plan.txt", b"Plan\n- draft the outline\n")
    page = web.page()
    ui.sign_in(page, web.email("ann"))
    ui.open_item(page, "plan.txt")
    preview = page.locator(".text-preview")
    preview.wait_for()
    assert "draft the outline" in preview.inner_text()

    page.get_by_role("button", name="Edit").click()
    editor = page.get_by_label("Document text")
    editor.wait_for()
    assert "draft the outline" in editor.input_value()
    editor.fill("Plan\n- draft the outline\n- review it with the team\n")
    page.get_by_role("button", name="Save").click()
    expect_toast(page, "Saved as version 2")
    page.locator("#version-rows tr").nth(1).wait_for()
    rows = page.locator("#version-rows tr")
    assert rows.count() == 2
    assert "review it with the team" in page.locator(".text-preview").inner_text()
    assert "Current" in rows.nth(0).inner_text() and "v2" in rows.nth(0).inner_text()

    page.get_by_role("button", name="Restore version 1").click()
    expect_toast(page, "Version 1 restored as version 3")
    page.locator("#version-rows tr").nth(2).wait_for()
    page.wait_for_function(
        "() => /outline\\n?$/.test(document.querySelector('.text-preview')?.textContent ?? '')"
    )
    assert ui.content_of(web.api, auth, doc["id"]) == b"Plan\n- draft the outline\n"
    page.get_by_role("button", name="Pin version 1").click()
    expect_toast(page, "Version 1 pinned")
    page.locator("#version-rows .badge-pin").wait_for()
    web.screenshot(page, "02-versions-after-restore", full_page=True)


def test_share_folder_with_second_user(web: Web) -> None:
    """Ann shares a folder with Bob by email; Bob sees it under "Shared with me" and the
    document's access explanation names the folder."""
    require_routes(
        web,
        ("POST", "/api/v1/shares"),
        ("GET", "/api/v1/shared-with-me"),
        ("GET", "/api/v1/documents/{document_id}/access"),
    )
    ann = web.register_api("Ann Archer", web.email("ann"))
    web.register_api("Bob Baker", web.email("bob"))
    auth = {"Authorization": f"Bearer {ann['token']}"}
    team = httpx.post(
        f"{web.api}/folders", json={"name": "Team handbook", "parent_id": None}, headers=auth
    ).json()
    ui.api_upload(web.api, auth, "onboarding.md", b"# Welcome\n\nRead this first.\n", team["id"])

    page = web.page()
    ui.sign_in(page, web.email("ann"))
    ui.row_action(page, "Team handbook", "Share")
    dialog = page.get_by_role("dialog", name="Share “Team handbook”")
    dialog.get_by_label("Email address").fill(web.email("bob"))
    dialog.get_by_label("Permission", exact=True).select_option("EDIT")
    dialog.get_by_role("button", name="Share", exact=True).click()
    dialog.locator("#share-people li.share-row").filter(has_text="Bob Baker").wait_for()
    assert "Bob Baker" in dialog.locator("#share-access").inner_text()
    web.screenshot(page, "03a-share-dialog")
    dialog.get_by_role("button", name="Done").click()
    ui.row(page, "Team handbook").locator(".badge-shared").wait_for()

    bob = web.page()  # another person's browser
    ui.sign_in(bob, web.email("bob"))
    bob.get_by_role("link", name="Shared with me").click()
    bob.get_by_role("heading", name="Shared with me").wait_for()
    shared = ui.row(bob, "Team handbook")
    shared.wait_for()
    assert "Ann Archer" in shared.inner_text() and "Can edit" in shared.inner_text()
    web.screenshot(bob, "03b-shared-with-me")
    ui.open_item(bob, "Team handbook")
    ui.open_item(bob, "onboarding.md")
    access = bob.locator("#access")
    bob.wait_for_function("() => /folder/.test(document.getElementById('access').textContent)")
    text = access.inner_text()
    assert "Team handbook" in text and "can edit" in text, text
    bob.locator(".markdown-body h1").filter(has_text="Welcome").wait_for()
    web.screenshot(bob, "03c-access-explained")


def test_password_link_for_anonymous_visitor(web: Web) -> None:
    """Ann makes a password link; a visitor with no account types a wrong password, then the
    right one, and downloads the file."""
    require_routes(web, ("POST", "/api/v1/shares"), ("GET", "/api/v1/links/{token}"))
    ann = web.register_api("Ann Archer", web.email("ann"))
    auth = {"Authorization": f"Bearer {ann['token']}"}
    body = b"Quarterly numbers: 42\n"
    ui.api_upload(web.api, auth, "report.txt", body)

    page = web.page()
    ui.sign_in(page, web.email("ann"))
    ui.open_item(page, "report.txt")
    page.get_by_role("button", name="Share").click()
    dialog = page.get_by_role("dialog", name="Share “report.txt”")
    dialog.get_by_label("Link permission").select_option("VIEW")
    dialog.get_by_label("Password (optional)").fill("open sesame")
    dialog.get_by_role("button", name="Create link").click()
    link = dialog.get_by_label("Link address").input_value()
    assert re.fullmatch(rf"{re.escape(web.url)}/l/[\w-]+", link), link
    dialog.locator("#share-links li").filter(has_text="password").wait_for()
    web.screenshot(page, "04a-link-created")

    visitor = web.page()  # a fresh browser: no cookies, no account
    visitor.goto(link)
    visitor.get_by_text("This link is protected by a password.").wait_for()
    visitor.get_by_label("Password").fill("open sesam")
    visitor.get_by_role("button", name="Open", exact=True).click()
    wrong = visitor.locator("#password-error")
    wrong.wait_for()
    assert "not right" in wrong.inner_text()
    visitor.get_by_label("Password").fill("open sesame")
    visitor.get_by_role("button", name="Open", exact=True).click()
    visitor.get_by_role("heading", name="report.txt").wait_for()
    assert "Quarterly numbers" in visitor.locator(".text-preview").inner_text()
    web.screenshot(visitor, "04b-link-opened")
    with visitor.expect_download() as download:
        visitor.get_by_role("button", name="Download").click()
    path = download.value.path()
    assert path is not None and path.read_bytes() == body
    assert download.value.suggested_filename == "report.txt"

    # Revoked: the visitor is told plainly.
    dialog.get_by_role("button", name="Revoke this link").click()
    expect_toast(page, "Link revoked")
    visitor.reload()
    visitor.get_by_role("heading", name="This link has expired").wait_for()


def test_concurrent_edits_offer_merge(web: Web) -> None:
    """Two browsers edit the same text; the second save offers merge / keep both / reload,
    and merge succeeds because the edits do not overlap."""
    ann = web.register_api("Ann Archer", web.email("ann"))
    auth = {"Authorization": f"Bearer {ann['token']}"}
    lines = [f"line {i}" for i in range(1, 11)]
    doc = ui.api_upload(web.api, auth, "minutes.txt", ("\n".join(lines) + "\n").encode())

    first, second = web.page(), web.page()
    for page in (first, second):
        ui.sign_in(page, web.email("ann"), f"/documents/{doc['id']}")
        page.locator(".text-preview").wait_for()
        page.get_by_role("button", name="Edit").click()
        page.get_by_label("Document text").wait_for()

    top = ["line 1 (edited in the first browser)", *lines[1:]]
    first.get_by_label("Document text").fill("\n".join(top) + "\n")
    first.get_by_role("button", name="Save").click()
    expect_toast(first, "Saved as version 2")

    bottom = [*lines[:9], "line 10 (edited in the second browser)"]
    second.get_by_label("Document text").fill("\n".join(bottom) + "\n")
    second.get_by_role("button", name="Save").click()
    conflict = second.get_by_role("alertdialog", name="This document changed")
    conflict.wait_for()
    for choice in ("Merge my changes", "Keep both (save mine as a copy)", "Reload (discard mine)"):
        assert conflict.get_by_role("button", name=choice).is_visible()
    web.screenshot(second, "05a-conflict-choice")
    conflict.get_by_role("button", name="Merge my changes").click()
    expect_toast(second, "merged into version 3")
    preview = second.locator(".text-preview")
    second.wait_for_function(
        "() => (document.querySelector('.text-preview')?.textContent || '').includes('second')"
    )
    merged = ["line 1 (edited in the first browser)", *lines[1:9], bottom[9]]
    assert preview.inner_text().strip() == "\n".join(merged)
    assert ui.content_of(web.api, auth, doc["id"]).decode() == "\n".join(merged) + "\n"
    web.screenshot(second, "05b-merged", full_page=True)


def test_delete_folder_then_restore_from_trash(web: Web) -> None:
    """Delete a folder, find it in the trash, restore it with its contents."""
    require_routes(web, ("GET", "/api/v1/trash"), ("POST", "/api/v1/folders/{folder_id}/restore"))
    ann = web.register_api("Ann Archer", web.email("ann"))
    auth = {"Authorization": f"Bearer {ann['token']}"}
    old = httpx.post(
        f"{web.api}/folders", json={"name": "Old drafts", "parent_id": None}, headers=auth
    ).json()
    ui.api_upload(web.api, auth, "draft.txt", b"an early draft\n", old["id"])

    page = web.page()
    ui.sign_in(page, web.email("ann"))
    ui.row_action(page, "Old drafts", "Delete")
    confirm = page.get_by_role("dialog", name="Delete “Old drafts”?")
    confirm.get_by_role("button", name="Move to trash").click()
    expect_toast(page, "moved to the trash")
    ui.row(page, "Old drafts").wait_for(state="detached")

    page.get_by_role("link", name="Trash", exact=True).click()
    trashed = ui.row(page, "Old drafts")
    trashed.wait_for()
    assert "My files" in trashed.inner_text()
    web.screenshot(page, "06a-trash")
    trashed.get_by_role("button", name="Restore Old drafts").click()
    expect_toast(page, "is back")
    page.get_by_text("The trash is empty.").wait_for()

    page.get_by_role("link", name="My files", exact=True).click()
    ui.open_item(page, "Old drafts")
    ui.row(page, "draft.txt").wait_for()
    web.screenshot(page, "06b-restored")


def test_activity_lists_what_happened(web: Web) -> None:
    """The activity page shows the audit entries for my documents, with names."""
    require_routes(web, ("GET", "/api/v1/audit"))
    ann = web.register_api("Ann Archer", web.email("ann"))
    auth = {"Authorization": f"Bearer {ann['token']}"}
    ui.api_upload(web.api, auth, "budget.csv", b"item,amount\ncoffee,12\n")
    synced = {**auth, "User-Agent": "docstore-sync/0.1.0"}  # what `docstore sync` sends
    ui.api_upload(web.api, synced, "notes.txt", b"from the laptop")
    page = web.page()
    ui.sign_in(page, web.email("ann"))
    page.get_by_role("link", name="Activity", exact=True).click()
    upload = page.locator('tr[data-action="UPLOAD"]')
    upload.first.wait_for()
    assert "budget.csv" in upload.nth(1).inner_text()
    # The sync client's uploads say so: the client's name beside the address.
    assert "notes.txt" in upload.first.inner_text()
    assert "docstore-sync/0.1.0" in upload.first.inner_text()
    assert page.locator('tr[data-action="LOGIN"]').count() >= 1
    web.screenshot(page, "07-activity")


def _put_bucket_cors(endpoint: str, bucket: str, origin: str) -> None:
    import boto3

    s3: Any = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    # The rule README.md documents: the UI's origin may PUT parts and read the ETag.
    s3.put_bucket_cors(
        Bucket=bucket,
        CORSConfiguration={
            "CORSRules": [
                {
                    "AllowedOrigins": [origin],
                    "AllowedMethods": ["PUT", "GET", "HEAD"],
                    "AllowedHeaders": ["*"],
                    "ExposeHeaders": ["ETag"],
                    "MaxAgeSeconds": 3600,
                }
            ]
        },
    )


def test_upload_goes_straight_to_s3(
    tmp_path: Any, sqlite_url: str, moto_endpoint: str, browser: Any
) -> None:
    """In S3 mode the browser PUTs the parts to the storage endpoint, not to docstore."""
    from tests.fixtures.s3 import unique_bucket
    from tests.fixtures.server import start_server

    bucket = unique_bucket()
    storage = f"s3://{bucket}?endpoint_url={moto_endpoint}&region=us-east-1&create_bucket=true"
    server = start_server(tmp_path, sqlite_url, {**SERVER_ENV, "DOCSTORE_STORAGE_URL": storage})
    web = Web(server, browser)
    try:
        _put_bucket_cors(moto_endpoint, bucket, server.url)
        page = web.page()
        sent: list[tuple[str, str]] = []
        page.on("request", lambda r: sent.append((r.method, r.url)))
        ui.sign_up(page, "Sam Storage", web.email("sam"))
        size = 12 * ui.MiB
        ui.drop_files(
            page,
            [
                {"name": "video.bin", "size": size},
                {"name": "a.txt", "type": "text/plain", "text": "a\n"},
            ],
        )
        ui.wait_uploads_done(page)
        ui.row(page, "video.bin").wait_for()
        assert page.locator("#overall").evaluate("e => e.value") == 100
        web.screenshot(page, "08-upload-to-s3")

        puts = [url for method, url in sent if method == "PUT"]
        assert len(puts) == 3, puts  # 12 MiB in 8 MiB parts, plus the one-part text file
        assert all(url.startswith(f"{moto_endpoint}/{bucket}/") for url in puts), puts
        assert not any(url.startswith(server.url) for _, url in sent if "/storage/" in url)
        assert not any("/api/v1/files" in url for _, url in sent)

        auth = ui.token_of(f"{server.url}/api/v1", web.email("sam"))
        items = httpx.get(f"{server.url}/api/v1/folders/root/children", headers=auth).json()
        big = next(i for i in items["items"] if i["name"] == "video.bin")
        doc = httpx.get(f"{server.url}/api/v1/documents/{big['id']}", headers=auth).json()
        assert doc["current_version"]["checksum_sha256"] == ui.sha256(ui.pattern(size))
        # The page declared each part's SHA-256 (WebCrypto): S3 checked the parts and the
        # server read nothing back, so the file's SHA-256 awaits the verification job.
        assert doc["current_version"]["checksum_verified"] is False

        # The preview reads the bytes back from the bucket too (GET allowed by the rule).
        ui.open_item(page, "a.txt")
        page.locator(".text-preview").filter(has_text="a").wait_for()
        assert any(
            method == "GET" and url.startswith(f"{moto_endpoint}/{bucket}/") for method, url in sent
        )
    finally:
        for ctx in web.contexts:
            ctx.close()
        server.stop()
    assert not web.problems, web.problems


def test_sort_page_rename_and_move(web: Web) -> None:
    """A big folder pages 50 at a time and sorts by name or date; rename and move (with the
    folder picker) work from the row menu."""
    ann = web.register_api("Ann Archer", web.email("ann"))
    auth = {"Authorization": f"Bearer {ann['token']}"}
    archive = httpx.post(
        f"{web.api}/folders", json={"name": "Archive", "parent_id": None}, headers=auth
    ).json()
    for i in range(54):
        ui.api_upload(web.api, auth, f"note-{i:02d}.txt", f"note {i}\n".encode())
    page = web.page()
    ui.sign_in(page, web.email("ann"))
    names = page.locator("#rows tr")
    ui.row(page, "note-48.txt").wait_for()
    assert names.count() == 50
    assert names.first.get_attribute("data-name") == "Archive"  # folders first
    page.get_by_role("button", name="Next").click()
    ui.row(page, "note-53.txt").wait_for()
    assert names.count() == 5 and page.get_by_text("Page 2").is_visible()
    page.get_by_role("button", name="Previous").click()
    ui.row(page, "note-00.txt").wait_for()

    page.get_by_label("Sort by").select_option("updated_at")
    page.wait_for_function(
        "() => document.querySelectorAll('#rows tr')[1]?.dataset.name === 'note-53.txt'"
    )

    ui.row_action(page, "note-53.txt", "Rename")
    dialog = page.get_by_role("dialog", name="Rename document")
    dialog.get_by_label("New name").fill("latest note.txt")
    dialog.get_by_role("button", name="Rename").click()
    ui.row(page, "latest note.txt").wait_for()

    ui.row_action(page, "latest note.txt", "Move")
    picker = page.get_by_role("dialog", name="Move “latest note.txt”")
    picker.get_by_role("button", name="Archive").click()
    picker.locator(".picker-where").filter(has_text="Archive").wait_for()
    web.screenshot(page, "09-move-folder-picker")
    picker.get_by_role("button", name="Move here").click()
    expect_toast(page, "Moved “latest note.txt” to “Archive”")
    ui.row(page, "latest note.txt").wait_for(state="detached")
    inside = httpx.get(f"{web.api}/folders/{archive['id']}/children", headers=auth).json()
    assert [i["name"] for i in inside["items"]] == ["latest note.txt"]


def _png(width: int, height: int) -> bytes:
    """A small valid PNG (a blue rectangle), made here rather than shipped as a file."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    row = b"\x00" + b"\x2f\x5b\xea" * width
    raw = zlib.compress(row * height)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")


def test_previews_and_comments(web: Web) -> None:
    """Images and Markdown preview in the page; Markdown's raw HTML stays text; comments."""
    ann = web.register_api("Ann Archer", web.email("ann"))
    auth = {"Authorization": f"Bearer {ann['token']}"}
    picture = ui.api_upload(web.api, auth, "diagram.png", _png(64, 40))
    hostile = (
        b"# Release notes\n\nSee <img src=x onerror=\"document.title='pwned'\"> and "
        b"<script>document.title='pwned'</script> [docs](javascript:alert(1)).\n\n- one\n- two\n"
    )
    notes = ui.api_upload(web.api, auth, "notes.md", hostile)

    page = web.page()
    ui.sign_in(page, web.email("ann"), f"/documents/{picture['id']}")
    image = page.locator("img.image-preview")
    image.wait_for()
    page.wait_for_function("() => document.querySelector('img.image-preview')?.naturalWidth === 64")

    page.goto(f"/documents/{notes['id']}")
    body = page.locator(".markdown-body")
    body.locator("h1").filter(has_text="Release notes").wait_for()
    assert body.locator("li").count() == 2
    assert body.locator("img, script").count() == 0
    assert "<img src=x" in body.inner_text()
    assert body.locator("a").count() == 0  # the javascript: link is not made a link
    assert "pwned" not in page.title()

    page.get_by_label("Add a comment").fill("Ship it on Friday?")
    page.get_by_role("button", name="Comment", exact=True).click()
    comment = page.locator("#comments .comment").filter(has_text="Ship it on Friday?")
    comment.wait_for()
    assert "You" in comment.inner_text()
    web.screenshot(page, "10-markdown-preview-and-comments", full_page=True)


def test_group_page_and_sharing_a_folder_with_a_group(web: Web) -> None:
    """Ann makes a group on the Groups page and adds Bob, shares a folder with the group
    from the share dialog; Bob's access explanation names the group."""
    require_routes(web, ("POST", "/api/v1/groups"), ("POST", "/api/v1/shares"))
    ann = web.register_api("Ann Archer", web.email("gann"))
    web.register_api("Bob Baker", web.email("gbob"))
    auth = {"Authorization": f"Bearer {ann['token']}"}
    design = httpx.post(
        f"{web.api}/folders", json={"name": "Design docs", "parent_id": None}, headers=auth
    ).json()
    ui.api_upload(web.api, auth, "brief.md", b"# Brief\n", design["id"])

    page = web.page()
    ui.sign_in(page, web.email("gann"))
    page.get_by_role("link", name="Groups").click()
    page.get_by_role("heading", name="Groups", exact=True).wait_for()
    # The heading is the server's; the form's handler is the script's, attached before its
    # first listing replaces "Loading…". Submitted earlier, the form would reload the page.
    page.get_by_text("You are not in any group yet.").wait_for()
    page.get_by_label("New group").fill("Design")
    page.get_by_role("button", name="Create group").click()
    card = page.locator('section[data-name="Design"]')
    card.wait_for()
    card.get_by_label("Add a member by email").fill(web.email("gbob"))
    card.get_by_role("button", name="Add", exact=True).click()
    card.locator("li.share-row").filter(has_text="Bob Baker").wait_for()
    web.screenshot(page, "06a-groups")

    page.goto("/folders/root")
    ui.row_action(page, "Design docs", "Share")
    dialog = page.get_by_role("dialog", name="Share “Design docs”")
    dialog.locator("#share-group-form").wait_for()
    dialog.get_by_label("Group", exact=True).select_option(label="Design")
    dialog.get_by_label("Group permission").select_option("COMMENT")
    dialog.get_by_role("button", name="Share with group").click()
    dialog.locator("#share-people li.share-row").filter(has_text="Design").wait_for()
    web.screenshot(page, "06b-share-with-group")

    bob = web.page()
    ui.sign_in(bob, web.email("gbob"))
    bob.get_by_role("link", name="Shared with me").click()
    ui.row(bob, "Design docs").wait_for()
    ui.open_item(bob, "Design docs")
    ui.open_item(bob, "brief.md")
    bob.wait_for_function("() => /group/.test(document.getElementById('access').textContent)")
    text = bob.locator("#access").inner_text()
    assert "Design" in text and "can comment" in text, text
    web.screenshot(bob, "06c-access-via-group")


def test_folder_view_refreshes_when_something_changes_elsewhere(web: Web) -> None:
    """The folder page follows the change feed: a file uploaded into the folder from
    elsewhere (another device, through the API) appears without a reload, and a rename
    from elsewhere shows too."""
    require_routes(web, ("GET", "/api/v1/changes/wait"), ("GET", "/api/v1/changes/cursor"))
    ann = web.register_api("Ann Live", web.email("annlive"))
    auth = {"Authorization": f"Bearer {ann['token']}"}
    live = httpx.post(
        f"{web.api}/folders", json={"name": "Live", "parent_id": None}, headers=auth
    ).json()
    page = web.page()
    ui.sign_in(page, web.email("annlive"))
    page.goto(f"/folders/{live['id']}")
    page.get_by_role("heading", name="Live").wait_for()
    # From the moment the page holds its cursor, every change after it reaches the page.
    page.wait_for_function(
        "() => performance.getEntriesByType('resource')"
        ".some((e) => e.name.includes('/api/v1/changes/cursor'))"
    )
    doc = ui.api_upload(web.api, auth, "from-elsewhere.txt", b"hello\n", live["id"])
    ui.row(page, "from-elsewhere.txt").wait_for(timeout=15_000)
    r = httpx.patch(f"{web.api}/documents/{doc['id']}", json={"name": "renamed.txt"}, headers=auth)
    assert r.status_code == 200, r.text
    ui.row(page, "renamed.txt").wait_for(timeout=15_000)


def test_upload_folder_sends_its_files_in_batches(web: Web, tmp_path: Path) -> None:
    """ "Upload folder" (a directory picker) sends the tree through POST /files/batch: the
    folders are created, every file lands at its path (a '"' in a name survives), and a file
    the server refuses fails alone, shown on the batch's row."""
    require_routes(web, ("POST", "/api/v1/files/batch"))
    tree = tmp_path / "Photos"
    (tree / "2024" / "june").mkdir(parents=True)
    (tree / "2024" / "june" / "beach.txt").write_text("sand\n")
    (tree / "2024" / 'say "cheese".txt').write_text("smile\n")
    (tree / "index.md").write_text("# Photos\n")
    page = web.page()
    ui.sign_up(page, "Fay Folder", web.email("fay"))
    batches: list[str] = []
    page.on(
        "request",
        lambda r: batches.append(r.url) if r.method == "POST" and "/files/batch" in r.url else None,
    )
    page.locator("#folder-input").set_input_files(tree)
    ui.wait_uploads_done(page)
    assert len(batches) == 1, batches
    assert "1 of 1 files · 100%" in page.locator("#overall-text").inner_text()
    auth = ui.token_of(web.api, web.email("fay"))

    def children(folder: object) -> dict[str, Any]:
        r = httpx.get(f"{web.api}/folders/{folder}/children", headers=auth)
        return {i["name"]: i for i in r.json()["items"]}

    photos = children("root")["Photos"]
    assert set(children(photos["id"])) == {"2024", "index.md"}
    year = children(photos["id"])["2024"]
    assert set(children(year["id"])) == {"june", 'say "cheese".txt'}
    assert set(children(children(year["id"])["june"]["id"])) == {"beach.txt"}
    ui.row(page, "Photos").wait_for()  # the listing shows the new folder

    # A second time: every file exists already, each fails alone (409), the row says so.
    page.locator("#folder-input").set_input_files(tree)
    page.locator('.upload-item[data-state="failed"]').wait_for()
    text = page.locator(".upload-item").first.inner_text()
    assert "3 of 3 not uploaded" in text and "already exists" in text
