"""The authorization matrix: every route of the app against every kind of caller.

The route list comes from the app itself (`app.routes`): a route with no entry in CASES or
ALLOWED fails `test_every_route_is_in_the_matrix`. To add an endpoint:
- a route that acts on a document, folder, version, share, comment, link or upload session:
  add a `Case` to CASES with the statuses each role must get (`needs(...)` covers the usual
  stranger 404 / too low 403 / allowed pattern);
- anything else (sign-in, the caller's own account, admin-only, signed storage URLs):
  add it to ALLOWED with the reason it has no per-item permission to check.

Roles, for routes with a signed-in caller: `stranger` (no access: must get 404),
`viewer`, `commenter`, `editor` (VIEW / COMMENT / EDIT through a share of the folder the
item is in), `owner`, and `link` (presents the item's link token as a bearer token: 401).
For /links/{token} routes the same columns present a token instead: `stranger` an unknown
one, `viewer`/`commenter`/`editor` a link at that level, `owner` the VIEW link together with
the owner's bearer token (which adds nothing there), `link` a revoked link.
Each case gets a fresh folder and document (two versions) inside the shared folder; roles
run in the order below, so what the editor changes is done before the owner's turn.
"""

from __future__ import annotations

import hashlib
import itertools
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient

from docstore import security
from docstore.app import create_app
from docstore.sharing.permissions import Level
from tests.fixtures.app import BASE, Api, User, make_settings
from tests.fixtures.databases import PG_URL_BASE, _pg_admin
from tests.fixtures.services import missing

P = "/api/v1"
ROLES = ("stranger", "link", "viewer", "commenter", "editor", "owner")
LEVELS = {"viewer": Level.VIEW, "commenter": Level.COMMENT, "editor": Level.EDIT}
_n = itertools.count()


def needs(level: Level, ok: int) -> dict[str, int]:
    """A route on an item that needs `level`: 404 unseen, 403 too low, `ok` otherwise."""
    out = {"stranger": 404, "link": 401, "owner": ok}
    for role, has in LEVELS.items():
        out[role] = ok if has >= level else 403
    return out


def trashed(ok: int) -> dict[str, int]:
    """A route on a trashed item: it exists for its owner only."""
    return {"stranger": 404, "link": 401, "viewer": 404, "commenter": 404, "editor": 404,
            "owner": ok}  # fmt: skip


def everyone(ok: int) -> dict[str, int]:
    """A route listing the caller's own things: every signed-in caller gets `ok`."""
    return {role: (401 if role == "link" else ok) for role in ROLES}


def link_route(view: int, comment: int, edit: int) -> dict[str, int]:
    """A /links/{token} route (see the module docstring for what each column presents)."""
    return {"stranger": 404, "link": 410, "viewer": view, "commenter": comment, "editor": edit,
            "owner": view}  # fmt: skip


def web(ok: int = 200) -> dict[str, int]:
    """A web UI page about an item: like VIEW, and the sign-in page instead of 401."""
    return {**needs(Level.VIEW, ok), "link": 303}


# --------------------------------------------------------------------------- the world


@dataclass
class Item:
    """A fresh folder and document (two versions) inside the shared folder, plus a share
    on the document to an outsider, links to it at each level, a revoked link and a
    password-protected one (`shares`: every share id on the document, revoked last)."""

    folder: dict[str, Any]
    doc: dict[str, Any]
    old_version: int
    share_id: int
    links: dict[str, str]
    shares: list[int] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def secrets(self) -> set[str]:
        """What no listing may show: every link token of the item and the link password."""
        return set(self.links.values()) - {self.links["stranger"]} | {LINK_PASSWORD}


@dataclass
class World:
    """One app, five accounts and the folder shared with three of them."""

    api: Api
    users: dict[str, User]
    team: dict[str, Any]

    def item(self) -> Item:
        owner = self.users["owner"]
        n = next(_n)
        folder = owner.mkdir(f"item{n}", self.team["id"])
        r = owner.upload(f"doc{n}.txt", b"first\n", folder["id"])
        assert r.status_code == 201, r.text
        doc = r.json()
        old = doc["current_version"]["id"]
        r = owner.post(f"{P}/documents/{doc['id']}/versions", content=b"second\n")
        assert r.status_code == 201, r.text
        doc = r.json()["document"]
        share = self._share(document_id=doc["id"], permission="VIEW", email=f"out{n}@example.com")
        shares = [share["id"]]
        links = {}
        for role, level in (("viewer", "VIEW"), ("commenter", "COMMENT"), ("editor", "EDIT")):
            link = self._share(document_id=doc["id"], permission=level, link=True)
            links[role] = link["token"]
            shares.append(link["id"])
        protected = self._share(
            document_id=doc["id"], permission="VIEW", link=True, password=LINK_PASSWORD
        )
        links["protected"] = protected["token"]
        shares.append(protected["id"])
        revoked = self._share(document_id=doc["id"], permission="EDIT", link=True)
        assert owner.delete(f"{P}/shares/{revoked['id']}").status_code == 204
        links["link"] = revoked["token"]
        shares.append(revoked["id"])
        links["owner"] = links["viewer"]
        links["stranger"] = "unknown-" + links["viewer"][8:]
        return Item(folder, doc, old, share["id"], links, shares)

    def _share(self, **body: Any) -> dict[str, Any]:
        r = self.users["owner"].post(f"{P}/shares", json=body)
        assert r.status_code == 201, r.text
        return dict(r.json())


def _database(request: pytest.FixtureRequest, tmp: Path) -> Iterator[str]:
    if request.param == "sqlite":
        template = request.getfixturevalue("sqlite_template")
        shutil.copyfile(template, tmp / "matrix.db")
        yield f"sqlite:///{tmp / 'matrix.db'}"
        return
    template = request.getfixturevalue("pg_template")
    name = f"docstore_matrix_{request.getfixturevalue('worker_id')}_{next(_n)}"
    with _pg_admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    try:
        yield PG_URL_BASE + name
    finally:
        with _pg_admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    """The app on each database, with the five callers; shared by every case of a module."""
    tmp = tmp_path_factory.mktemp("matrix")
    with pytest.MonkeyPatch.context() as mp:
        # The matrix is about permissions: accounts need not cost a real argon2 hash each.
        cheap = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
        mp.setattr(security, "_hasher", cheap)
        yield from _world(request, tmp)


def _world(request: pytest.FixtureRequest, tmp: Path) -> Iterator[World]:
    for url in _database(request, tmp):
        settings = make_settings(tmp, url)
        with TestClient(create_app(settings), base_url=BASE, follow_redirects=False) as client:
            api = Api(client)
            users = {role: api.register(f"{role}{next(_n)}") for role in LEVELS}
            users["owner"] = api.register(f"owner{next(_n)}")
            users["stranger"] = api.register(f"stranger{next(_n)}")
            team = users["owner"].mkdir("team")
            for role, level in LEVELS.items():
                r = users["owner"].post(
                    f"{P}/shares",
                    json={"folder_id": team["id"], "permission": level.name,
                          "email": users[role].email},
                )  # fmt: skip
                assert r.status_code == 201, r.text
            yield World(api, users, team)


# --------------------------------------------------------------------------- the cases


@dataclass
class Ctx:
    """What a request builder may use: the world, this case's item, the role."""

    world: World
    item: Item
    role: str

    @property
    def user(self) -> User:
        return self.world.users["owner" if self.role == "link" else self.role]


Value = Any | Callable[[Ctx], Any]


@dataclass(frozen=True)
class Case:
    """One route (and variant) with the status each role must get."""

    method: str
    path: str
    expect: dict[str, int]
    variant: str = ""
    json: Value = None
    params: Value = None
    content: Value = None
    headers: Value = None
    auth: str = "bearer"  # bearer | cookie | link
    prepare: Callable[[World, Item], None] | None = None
    check: Callable[[Ctx, httpx.Response], None] | None = None

    @property
    def id(self) -> str:
        return f"{self.method} {self.path}" + (f" [{self.variant}]" if self.variant else "")


def _v(value: Value, ctx: Ctx) -> Any:
    return value(ctx) if callable(value) else value


_BATCH_HEADERS = {"Content-Type": "multipart/form-data; boundary=matrix"}


def _batch_body(ctx: Ctx) -> bytes:
    """One file at a nested path, for POST /files/batch (a folder is created with it)."""
    head = f'--matrix\r\nContent-Disposition: form-data; name="f"; filename="{ctx.role}/b.txt"'
    return f"{head}\r\n\r\nbatch file\r\n--matrix--\r\n".encode()


def _batch_created(r: httpx.Response) -> None:
    assert [i["status"] for i in r.json()["items"]] == [201], r.text


def _trash_doc(world: World, item: Item) -> None:
    owner = world.users["owner"]
    assert owner.delete(f"{P}/documents/{item.doc['id']}").status_code == 204


def _trash_folder(world: World, item: Item) -> None:
    owner = world.users["owner"]
    assert owner.delete(f"{P}/folders/{item.folder['id']}").status_code == 204


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _upload_by(role: str) -> Callable[[World, Item], None]:
    """An upload session started by `role`: a new version with content they can read, so
    `skip_upload` applies and it completes without parts."""

    def prepare(world: World, item: Item) -> None:
        r = world.users[role].post(
            f"{P}/uploads",
            json={"filename": item.doc["name"], "size_bytes": len(b"second\n"),
                  "checksum_sha256": _sha(b"second\n"), "document_id": item.doc["id"]},
        )  # fmt: skip
        assert r.status_code == 201, r.text
        assert r.json()["skip_upload"] is True
        item.extra["upload_id"] = r.json()["upload_id"]

    return prepare


def _own_upload(role: str, ok: int) -> dict[str, int]:
    return {r: (401 if r == "link" else ok if r == role else 404) for r in ROLES}


def _only_owner_sees_trashed(ctx: Ctx, r: httpx.Response) -> None:
    ids = {(i["kind"], i["id"]) for i in r.json()["items"]}
    assert (("document", ctx.item.doc["id"]) in ids) == (ctx.role == "owner")


def _trash_survives_others(ctx: Ctx, r: httpx.Response) -> None:
    listing = ctx.world.users["owner"].get(f"{P}/trash").json()["items"]
    present = any(i["id"] == ctx.item.doc["id"] for i in listing)
    assert present == (ctx.role != "owner"), "emptying one's trash must not touch others'"


def _shared_with_me(ctx: Ctx, r: httpx.Response) -> None:
    ids = {(i["kind"], i["id"]) for i in r.json()["items"]}
    assert (("folder", ctx.world.team["id"]) in ids) == (ctx.role in LEVELS)
    assert ("document", ctx.item.doc["id"]) not in ids


def _own_audit_only(ctx: Ctx, r: httpx.Response) -> None:
    me = ctx.user.id
    for entry in r.json()["items"]:
        assert entry["user_id"] == me or entry["owner_id"] == me, entry
    if ctx.role == "owner":
        assert r.json()["items"], "the owner sees the history of their document"


def _names(ctx: Ctx, r: httpx.Response) -> None:
    body = r.json()
    seen = str(ctx.item.doc["id"]) in body["documents"] or ctx.item.doc["id"] in body["documents"]
    assert seen == (ctx.role != "stranger")


def _share_flags(ctx: Ctx, r: httpx.Response) -> None:
    flagged = r.json()["documents"]
    assert (ctx.item.doc["id"] in flagged) == (ctx.role == "owner")


def _share_listing(ctx: Ctx, r: httpx.Response) -> None:
    """The owner's listing has every share of the item, says which link has a password, and
    shows no token, link URL or password (hash) of any of them. (Other callers get 403/404;
    `test_authorization` checks no answer to them carries a secret.)"""
    assert ctx.role == "owner"
    rows = {row["id"]: row for row in r.json()["items"]}
    live, revoked = ctx.item.shares[:-1], ctx.item.shares[-1]
    assert set(live) <= set(rows), (live, sorted(rows))
    assert revoked not in rows or rows[revoked]["is_active"] is False
    for row in rows.values():
        assert row.get("token") is None and row.get("url") is None, row
        assert row["has_password"] == (row["id"] == live[-1]), row
        assert not {key for key in row if "password" in key or "hash" in key} - {"has_password"}


DOC = f"{P}/documents/{{document_id}}"
FOLDER = f"{P}/folders/{{folder_id}}"
VERSION = f"{DOC}/versions/{{version_id}}"
NEW_BYTES = b"third\n"
LINK_PASSWORD = "matrix link password"

CASES: list[Case] = [
    # Folders
    Case("POST", f"{P}/folders", needs(Level.EDIT, 201),
         json=lambda c: {"name": f"by-{c.role}", "parent_id": c.item.folder["id"]}),
    Case("GET", FOLDER, needs(Level.VIEW, 200)),
    Case("GET", f"{FOLDER}/children", needs(Level.VIEW, 200)),
    Case("PATCH", FOLDER, needs(Level.EDIT, 200), json=lambda c: {"name": f"renamed-{c.role}"}),
    Case("DELETE", FOLDER, needs(Level.OWNER, 204)),
    Case("POST", f"{FOLDER}/restore", trashed(200), prepare=_trash_folder),
    Case("GET", f"{FOLDER}/shares", needs(Level.OWNER, 200)),
    # Documents and versions (the old version is not the current one)
    Case("POST", f"{P}/files", needs(Level.EDIT, 201), content=b"new file",
         params=lambda c: {"folder_id": c.item.folder["id"], "name": f"{c.role}.txt"}),
    Case("POST", f"{P}/files/batch", needs(Level.EDIT, 200), content=lambda c: _batch_body(c),
         params=lambda c: {"folder_id": c.item.folder["id"]}, headers=_BATCH_HEADERS,
         check=lambda c, r: _batch_created(r)),
    Case("GET", DOC, needs(Level.VIEW, 200)),
    Case("PATCH", DOC, needs(Level.EDIT, 200), json=lambda c: {"name": f"{c.role}.txt"}),
    Case("DELETE", DOC, needs(Level.OWNER, 204)),
    Case("POST", f"{DOC}/restore", trashed(200), prepare=_trash_doc),
    Case("GET", f"{DOC}/download", needs(Level.VIEW, 200), variant="old version",
         params=lambda c: {"version_id": c.item.old_version, "redirect": "false"}),
    Case("GET", f"{DOC}/versions", needs(Level.VIEW, 200)),
    Case("POST", f"{DOC}/versions", needs(Level.EDIT, 201), content=NEW_BYTES),
    Case("POST", f"{VERSION}/restore", needs(Level.EDIT, 201)),
    Case("PATCH", VERSION, needs(Level.EDIT, 200), json={"keep_forever": True}),
    Case("DELETE", VERSION, needs(Level.OWNER, 204)),
    # Sharing
    Case("POST", f"{P}/shares", needs(Level.OWNER, 201),
         json=lambda c: {"document_id": c.item.doc["id"], "permission": "VIEW",
                         "email": f"new-{c.role}-{next(_n)}@example.com"}),
    Case("POST", f"{P}/shares", needs(Level.OWNER, 201), variant="link on the folder",
         json=lambda c: {"folder_id": c.item.folder["id"], "permission": "VIEW", "link": True}),
    Case("PATCH", f"{P}/shares/{{share_id}}", needs(Level.OWNER, 200),
         json={"permission": "COMMENT"}),
    Case("DELETE", f"{P}/shares/{{share_id}}", needs(Level.OWNER, 204)),
    Case("GET", f"{DOC}/shares", needs(Level.OWNER, 200), check=_share_listing),
    Case("GET", f"{DOC}/access", needs(Level.VIEW, 200)),
    Case("GET", f"{DOC}/access", {**needs(Level.VIEW, 403), "owner": 200},
         variant="about someone else", params=lambda c: {"user_id": c.world.users["stranger"].id}),
    Case("GET", f"{P}/shared-with-me", everyone(200), check=_shared_with_me),
    # Comments
    Case("GET", f"{DOC}/comments", needs(Level.VIEW, 200)),
    Case("POST", f"{DOC}/comments", needs(Level.COMMENT, 201),
         json=lambda c: {"body": f"from {c.role}", "version_id": c.item.old_version}),
    # Links
    Case("GET", f"{P}/links/{{token}}", link_route(200, 200, 200), auth="link"),
    Case("GET", f"{P}/links/{{token}}/download", link_route(307, 307, 307), auth="link",
         params=lambda c: {"version_id": c.item.old_version}),
    Case("POST", f"{P}/links/{{token}}/versions", link_route(403, 403, 201), auth="link",
         content=NEW_BYTES),
    # Upload sessions
    Case("POST", f"{P}/uploads", needs(Level.EDIT, 201), variant="new document in folder",
         json=lambda c: {"filename": f"{c.role}.bin", "size_bytes": 3,
                         "checksum_sha256": _sha(b"abc"), "folder_id": c.item.folder["id"]}),
    Case("POST", f"{P}/uploads", needs(Level.EDIT, 201), variant="new version",
         json=lambda c: {"filename": "v.bin", "size_bytes": 3, "checksum_sha256": _sha(b"abc"),
                         "document_id": c.item.doc["id"],
                         "base_version_id": c.item.old_version}),
    Case("POST", f"{P}/uploads/{{upload_id}}/complete", _own_upload("editor", 201),
         variant="editor's session", prepare=_upload_by("editor")),
    Case("POST", f"{P}/uploads/{{upload_id}}/complete", _own_upload("owner", 201),
         variant="owner's session", prepare=_upload_by("owner")),
    Case("DELETE", f"{P}/uploads/{{upload_id}}", _own_upload("editor", 204),
         variant="editor's session", prepare=_upload_by("editor")),
    # Trash (trashed items exist for their owner only)
    Case("GET", f"{P}/trash", everyone(200), prepare=_trash_doc, check=_only_owner_sees_trashed),
    Case("DELETE", f"{P}/trash", everyone(204), prepare=_trash_doc, check=_trash_survives_others),
    Case("DELETE", f"{P}/trash/{{document_id}}", trashed(204), prepare=_trash_doc),
    Case("DELETE", f"{P}/trash/folders/{{folder_id}}", trashed(204), prepare=_trash_folder),
    Case("DELETE", f"{P}/trash/{{document_id}}", {**needs(Level.OWNER, 404), "owner": 404},
         variant="not in the trash"),
    # Audit: everyone may ask; each sees only their own actions and their own items' history
    Case("GET", f"{P}/audit", everyone(200), check=_own_audit_only,
         params=lambda c: {"document_id": c.item.doc["id"]}),
    # Web UI (session cookie): the same checks behind the HTML pages and their JSON helpers
    Case("GET", "/folders/{folder_id}", web(), auth="cookie"),
    Case("GET", "/documents/{document_id}", web(), auth="cookie"),
    Case("GET", "/web/names", {**everyone(200)}, auth="cookie", check=_names,
         params=lambda c: {"documents": str(c.item.doc["id"]),
                           "folders": str(c.item.folder["id"])}),
    Case("GET", "/web/shared-flags/{folder_id}", everyone(200), auth="cookie",
         check=_share_flags),
    Case("GET", f"{P}/changes/cursor", needs(Level.VIEW, 200), variant="folder scope",
         params=lambda c: {"folder_id": c.item.folder["id"]}),
]  # fmt: skip

ALLOWED: dict[str, str] = {
    "GET /api/v1/changes": "the caller's own change feed: its rows are per user, written for "
    "those who could see the item (tests/changes: a stranger gets no row, not even an id)",
    "GET /api/v1/changes/wait": "long-poll on the caller's own feed (tests/changes)",
    "GET /api/v1/openapi.json": "the public API description",
    "GET /api/v1/docs": "the API documentation page",
    "GET /docs/oauth2-redirect": "part of the API documentation page",
    "GET /api/v1/health": "service status, no data (API.md: no auth)",
    "GET /healthz": "service status, no data (API.md: no auth)",
    "GET /readyz": "readiness for a balancer (draining, migrating, dependencies), no data",
    "POST /api/v1/auth/register": "creates an account; no item involved",
    "POST /api/v1/auth/login": "signs in; tested in tests/users",
    "POST /api/v1/auth/logout": "revokes the caller's own token",
    "GET /api/v1/users/me": "the caller's own account",
    "GET /api/v1/admin/users": "admin only, no per-item permission (tests/admin)",
    "POST /api/v1/admin/users/{user_id}/disable": "admin only (tests/admin)",
    "POST /api/v1/admin/users/{user_id}/enable": "admin only (tests/admin)",
    "GET /api/v1/admin/storage": "admin only, instance totals (tests/admin)",
    "GET /api/v1/admin/retention/preview": "admin only (tests/admin)",
    "GET /api/v1/admin/audit/status": "admin only (tests/admin)",
    "POST /api/v1/admin/audit/verify": "admin only (tests/admin)",
    "GET /api/v1/admin/audit/export": "admin only, the whole log (tests/admin)",
    "POST /api/v1/admin/users": "admin only, no per-item permission (tests/users/test_admin.py)",
    "PATCH /api/v1/admin/users/{user_id}": "admin only (tests/users/test_admin.py)",
    "GET /api/v1/admin/plans": "admin only (tests/users/test_admin.py)",
    "PUT /api/v1/admin/plans/{name}": "admin only (tests/users/test_admin.py)",
    "POST /api/v1/admin/retention/run": "admin only, runs the retention job (tests/retention)",
    "PUT /storage/parts/{upload_id}/{part_number}": "authorised by the URL's HMAC signature "
    "(tests/storage); the signature is only issued by POST /uploads, which is in the matrix",
    "GET /storage/objects": "authorised by the URL's HMAC signature (tests/storage); issued "
    "only by the download routes in the matrix",
    "GET /": "web UI home: redirects to the caller's own root",
    "GET /login": "web sign-in form",
    "POST /login": "web sign-in",
    "GET /register": "web sign-up form",
    "POST /register": "web sign-up",
    "POST /logout": "web sign-out of the caller's own session",
    "GET /shared": "web page shell; its data comes from GET /api/v1/shared-with-me",
    "GET /trash": "web page shell; its data comes from GET /api/v1/trash",
    "GET /groups": "web page shell; its data comes from GET /api/v1/groups",
    "GET /activity": "web page shell; its data comes from GET /api/v1/audit",
    "GET /search": "web page shell; its data comes from GET /api/v1/search",
    "GET /api/v1/search": "a read of many items filtered by permissions.readable in its "
    "statement (stranger, sharee, revocation, trash: tests/search/test_search.py)",
    "GET /l/{token}": "web page shell for anyone; its data comes from GET /api/v1/links/{token}",
    "GET /static": "static assets of the web UI",
    "GET /dav": "the WebDAV mount: every method authenticates inside docstore.dav and reaches "
    "items through sharing.permissions (tests/dav/test_dav.py: 401, 404 stranger, 403 VIEW)",
    "GET /admin": "admin console: administrators only, 404 for anyone else (tests/web)",
    "GET /admin/users": "admin console page shell; data from GET /api/v1/admin/users",
    "GET /admin/plans": "admin console page shell; data from GET /api/v1/admin/plans",
    "GET /admin/storage": "admin console page shell; data from GET /api/v1/admin/storage",
    "GET /admin/audit": "admin console page shell; data from GET /api/v1/admin/audit/status",
    "POST /api/v1/users/me/password": "the caller's own password (tests/users/test_sessions.py)",
    "GET /api/v1/users/me/sessions": "the caller's own tokens (tests/users/test_sessions.py)",
    "DELETE /api/v1/users/me/sessions/{session_id}": "the caller's own tokens; another "
    "account's id is 404 (tests/users/test_sessions.py)",
    "POST /api/v1/users/me/app-passwords": "a token of the caller's own (tests/users)",
    "GET /security": "web page of the caller's own sessions (tests/users/test_security_forms.py)",
    "POST /security/password": "web form: the caller's own password",
    "POST /security/app-passwords": "web form: a token of the caller's own",
    "POST /security/sessions/{session_id}/revoke": "web form: the caller's own tokens only",
    "POST /api/v1/groups": "creates the caller's own group; no item involved",
    "GET /api/v1/groups": "the caller's own groups",
    "GET /api/v1/groups/{group_id}": "membership rules (members only, else 404): tests/groups",
    "POST /api/v1/groups/{group_id}/members": "managers only (stranger 404, member 403): "
    "tests/groups",
    "DELETE /api/v1/groups/{group_id}/members/{user_id}": "managers, or the member themself "
    "(stranger 404, member 403): tests/groups",
    "DELETE /api/v1/groups/{group_id}": "managers only (stranger 404, member 403): tests/groups",
    # Account links (tests/accounts): no item involved; a mailed single-use token, the
    # caller's own account, or admin only.
    "POST /api/v1/auth/verify-email": "uses a mailed single-use token (tests/accounts)",
    "POST /api/v1/auth/verify-email/resend": "the caller's own account (tests/accounts)",
    "POST /api/v1/auth/invitations/{token}/accept": "uses a mailed single-use token "
    "(tests/accounts)",
    "POST /api/v1/auth/password-reset": "mails the address's owner; same answer for anyone",
    "POST /api/v1/auth/password-reset/confirm": "uses a mailed single-use token (tests/accounts)",
    "POST /api/v1/users/me/email": "the caller's own account, with its password (tests/accounts)",
    "POST /api/v1/admin/users/{user_id}/password-reset": "admin only (tests/accounts)",
    "POST /api/v1/admin/invitations": "admin only (tests/accounts: a user gets 403)",
    "GET /verify-email": "web page of a mailed link; uses nothing until its form is sent",
    "POST /verify-email": "web form over POST /api/v1/auth/verify-email",
    "POST /web/verify-email/resend": "web form: the caller's own account",
    "GET /forgot-password": "web form",
    "POST /forgot-password": "web form over POST /api/v1/auth/password-reset",
    "GET /reset-password": "web page of a mailed link; uses nothing until its form is sent",
    "POST /reset-password": "web form over POST /api/v1/auth/password-reset/confirm",
    "GET /invitations/accept": "web page of a mailed link; uses nothing until its form is sent",
    "POST /invitations/accept": "web form over POST /api/v1/auth/invitations/{token}/accept",
    # Webhooks: the caller's own (another user's is 404: tests/webhooks); what a delivery
    # carries is the owner's change feed, read with the feed's visibility.
    "POST /api/v1/webhooks": "creates the caller's own webhook; a folder_id must be visible "
    "(404 otherwise: tests/webhooks)",
    "GET /api/v1/webhooks": "the caller's own webhooks",
    "GET /api/v1/webhooks/{webhook_id}": "the caller's own webhook, else 404 (tests/webhooks)",
    "PATCH /api/v1/webhooks/{webhook_id}": "the caller's own webhook, else 404 (tests/webhooks)",
    "DELETE /api/v1/webhooks/{webhook_id}": "the caller's own webhook, else 404 (tests/webhooks)",
    "GET /api/v1/webhooks/{webhook_id}/deliveries": "the caller's own webhook, else 404 "
    "(tests/webhooks)",
    "POST /api/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver": "the caller's own "
    "webhook, else 404 (tests/webhooks)",
}


def app_routes() -> set[str]:
    """'METHOD /path' for every route the app serves."""
    app = create_app(make_settings(Path("/nonexistent"), "sqlite://"))
    out = set()
    for route in iter_route_contexts(app.routes):
        methods = set(route.methods or {"GET"})  # a mount serves whatever is under it
        if "GET" in methods:
            methods.discard("HEAD")  # HEAD runs the GET handler
        out |= {f"{m} {route.path}" for m in methods}
    return out


ROUTES = app_routes()


def test_every_route_is_in_the_matrix() -> None:
    covered = {f"{c.method} {c.path}" for c in CASES} | set(ALLOWED)
    missing = sorted(ROUTES - covered)
    assert not missing, (
        "Routes without an authorization-matrix entry (add a Case, or an ALLOWED reason, "
        f"in {__file__}): {missing}"
    )
    for case in CASES:
        assert set(case.expect) == set(ROLES), case.id


# --------------------------------------------------------------------------- the runner


def _request(ctx: Ctx, case: Case) -> httpx.Response:
    item = ctx.item
    ids = {
        "document_id": item.doc["id"],
        "folder_id": item.folder["id"],
        "version_id": item.old_version,
        "share_id": item.share_id,
        "token": item.links[ctx.role],
        "upload_id": item.extra.get("upload_id", "none"),
    }
    url = case.path.format(**ids)
    headers: dict[str, str] = {}
    if case.auth == "link":
        if ctx.role == "owner":
            headers["Authorization"] = f"Bearer {ctx.world.users['owner'].token}"
    elif case.auth == "cookie":
        token = item.links["viewer"] if ctx.role == "link" else ctx.user.token
        headers["Cookie"] = f"docstore_session={token}"
    else:
        token = item.links["viewer"] if ctx.role == "link" else ctx.user.token
        headers["Authorization"] = f"Bearer {token}"
    kwargs: dict[str, Any] = {"headers": headers}
    headers.update(_v(case.headers, ctx) or {})
    for name in ("json", "params", "content"):
        value = _v(getattr(case, name), ctx)
        if value is not None:
            kwargs[name] = value
    return ctx.world.api.client.request(case.method, url, **kwargs)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_authorization(world: World, case: Case) -> None:
    if f"{case.method} {case.path}" not in ROUTES:
        missing(f"the route {case.method} {case.path}", "not served by this app")
    item = world.item()
    if case.prepare is not None:
        case.prepare(world, item)
    wrong = []
    for role in ROLES:
        ctx = Ctx(world, item, role)
        r = _request(ctx, case)
        presented = item.links[role] if case.auth == "link" else None
        shown = sorted(s for s in item.secrets() - {presented} if s in r.text)
        if shown or "$argon2" in r.text:
            wrong.append(f"{role}: the answer shows a link token or password: {r.text[:300]}")
        if r.status_code != case.expect[role]:
            wrong.append(f"{role}: {r.status_code} (expected {case.expect[role]}) {r.text[:200]}")
            continue
        if case.check is not None and r.status_code < 300:
            case.check(ctx, r)
    assert not wrong, f"{case.id}:\n" + "\n".join(wrong)


def test_the_matrix_world_is_what_the_cases_assume(world: World) -> None:
    item = world.item()
    for role, level in LEVELS.items():
        r = world.users[role].get(f"{P}/documents/{item.doc['id']}")
        assert r.json()["permission"] == level.name
    assert world.users["stranger"].get(f"{P}/documents/{item.doc['id']}").status_code == 404
    r = world.api.client.get(f"{P}/links/{item.links['editor']}")
    assert r.json()["permission"] == "EDIT"
