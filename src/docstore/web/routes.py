"""The web UI: server-rendered pages whose scripts call the JSON API with the session cookie.

Pages render the frame (navigation, quota, headings, forms); the scripts under static/ fill
them from `/api/v1`. Sign-in and sign-up are plain HTML forms handled here, so the session
token goes straight into an HttpOnly cookie and never reaches a script.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError
from sqlalchemy import update
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.types import Scope

from docstore.config import Settings
from docstore.context import Actor
from docstore.deps import DB, Svc, anonymous_actor, client_ip
from docstore.documents.dav_state import live_lock
from docstore.errors import DocstoreError, Unauthenticated
from docstore.folders import service as folders
from docstore.security import token_digest
from docstore.session_cookie import (
    CSRF_FIELD,
    check_csrf,
    check_form_token,
    clear_session,
    cookie_token,
    csrf_for,
    form_token,
    is_secure,
    set_form_cookie,
    set_session,
)
from docstore.sharing import service as sharing
from docstore.sharing.permissions import get_document_for
from docstore.users import login_limits, passwords
from docstore.users import service as users
from docstore.users.models import ApiToken, User
from docstore.users.schemas import LoginIn, RegisterIn
from docstore.web import lookup
from docstore.web.security import SecurityHeaders

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")


def filesize(n: int) -> str:
    """Bytes in binary units, as the pages' scripts print them."""
    if n < 1024:
        return f"{n} B"
    value = float(n)
    for unit in ("KB", "MB", "GB", "TB", "PB"):
        value /= 1024
        if value < 1024 or unit == "PB":
            break
    return f"{value:.0f} {unit}" if value >= 100 else f"{value:.1f} {unit}"


templates.env.filters["filesize"] = filesize
router = APIRouter(include_in_schema=False)

MAX_FORM_BYTES = 16 * 1024
# The API routes each UI feature needs; a page hides what the server does not offer (yet).
FEATURES = {
    "uploads": ("POST", "/api/v1/uploads"),
    "shares": ("POST", "/api/v1/shares"),
    "shared_with_me": ("GET", "/api/v1/shared-with-me"),
    "access": ("GET", "/api/v1/documents/{}/access"),
    "links": ("GET", "/api/v1/links/{}"),
    "comments": ("GET", "/api/v1/documents/{}/comments"),
    "trash": ("GET", "/api/v1/trash"),
    "audit": ("GET", "/api/v1/audit"),
    "groups": ("GET", "/api/v1/groups"),
}
_PARAM = re.compile(r"\{[^}]*\}")


class UIStatic(StaticFiles):
    """The vendored assets; revalidated on every load so an upgrade is never half-applied."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers["Cache-Control"] = "no-cache"
        return response


def features(app: FastAPI) -> dict[str, bool]:
    """Which optional API routes this server has (read from its OpenAPI document)."""
    paths = app.openapi().get("paths", {})
    present = {
        (method.upper(), _PARAM.sub("{}", path))
        for path, operations in paths.items()
        for method in operations
    }
    return {name: key in present for name, key in FEATURES.items()}


def safe_next(value: str | None) -> str:
    """A local path to go to after signing in (never another site)."""
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/"


async def read_form(request: Request) -> dict[str, str]:
    """A small urlencoded form body (first value of each field)."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            break
    fields = parse_qs(body[:MAX_FORM_BYTES].decode("utf-8", "replace"), keep_blank_values=True)
    return {k: v[0] for k, v in fields.items()}


def session_user(request: Request, db: Session) -> tuple[User, str] | None:
    """The signed-in user and session token from the cookie, if valid."""
    token = cookie_token(request)
    if token is None:
        return None
    try:
        user, _ = users.authenticate(db, token)
    except Unauthenticated:
        return None
    return user, token


def quota(user: User) -> dict[str, Any]:
    """The quota meter's numbers."""
    total = max(user.quota_bytes, 0)
    pct = 100.0 if total == 0 and user.used_bytes else 0.0
    if total:
        pct = min(100.0, user.used_bytes * 100.0 / total)
    return {"used": user.used_bytes, "total": total, "pct": round(pct, 1), "warn": pct > 90}


def render(
    request: Request,
    template: str,
    *,
    user: User | None = None,
    token: str | None = None,
    title: str = "",
    page: str = "",
    data: dict[str, Any] | None = None,
    status_code: int = 200,
    **context: Any,
) -> Response:
    """A page with the shared frame and the data its script needs."""
    page_data: dict[str, Any] = {"page": page, "features": features(request.app), **(data or {})}
    if user is not None:
        page_data["me"] = {
            "id": user.id,
            "name": user.name,
            "email": user.email,
            "root_folder_id": user.root_folder_id,
        }
    return templates.TemplateResponse(
        request,
        template,
        {
            "title": title,
            "page": page,
            "user": user,
            "csrf": csrf_for(token) if token else "",
            "quota": quota(user) if user is not None else None,
            "page_data": page_data,
            **context,
        },
        status_code=status_code,
    )


def to_login(request: Request) -> RedirectResponse:
    """Send an anonymous visitor to the sign-in page, coming back here afterwards."""
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)


def _actor(request: Request, user: User) -> Actor:
    actor = anonymous_actor(request)
    actor.user = user
    return actor


def _auth_page(
    request: Request,
    template: str,
    settings: Settings,
    error: str = "",
    status_code: int = 200,
    **context: Any,
) -> Response:
    token = form_token(request)
    response = render(
        request, template, title=context.pop("title", ""), page="auth", error=error,
        form_token=token, open_signup=settings.open_signup, status_code=status_code, **context,
    )  # fmt: skip
    set_form_cookie(response, token, is_secure(request, settings.public_url))
    return response


def _validation_message(exc: ValidationError, password: str = "") -> str:
    fields = {str(e["loc"][0]) for e in exc.errors() if e.get("loc")}
    if "email" in fields:
        return "Enter a valid email address."
    if "password" in fields:  # the rule's own reason (users.passwords)
        reason = passwords.problem(password) or "choose another password"
        return reason[:1].upper() + reason[1:] + "."
    if "name" in fields:
        return "Enter your name."
    return "Check the form and try again."


def _mark_session(db: Session, token: str) -> None:
    """Tokens issued to the browser are session tokens (the API's are `api`)."""
    db.execute(
        update(ApiToken).where(ApiToken.token_hash == token_digest(token)).values(kind="session")
    )


def _signed_in(request: Request, settings: Settings, token: str, target: str) -> Response:
    response = RedirectResponse(target, status_code=303)
    secure = is_secure(request, settings.public_url)
    set_session(response, token, settings.token_ttl_seconds, secure)
    response.delete_cookie("docstore_form", path="/")
    return response


@router.get("/")
def home(request: Request, db: DB) -> Response:
    """The signed-in user's files, else the sign-in page."""
    if session_user(request, db) is None:
        return RedirectResponse("/login", status_code=303)
    return RedirectResponse("/folders/root", status_code=303)


@router.get("/login")
def login_page(request: Request, db: DB, svc: Svc, next: str | None = None) -> Response:
    """The sign-in form."""
    if session_user(request, db) is not None:
        return RedirectResponse(safe_next(next), status_code=303)
    return _auth_page(request, "login.html", svc.settings, title="Sign in", next=safe_next(next))


@router.post("/login")
async def login_submit(request: Request, db: DB, svc: Svc) -> Response:
    """Check the password (the API's login, with its audit), then set the session cookie."""
    form = await read_form(request)
    target = safe_next(form.get("next"))
    headers: dict[str, str] = {}
    try:
        check_form_token(request, form.get(CSRF_FIELD))
        body = LoginIn(email=form.get("email", ""), password=form.get("password", ""))
        ua = request.headers.get("user-agent")
        actor = anonymous_actor(request)
        out = await run_in_threadpool(login_limits.sign_in, db, svc, actor, body, ua)
    except ValidationError:
        out = None
        error, status = "Wrong email or password.", 401
    except DocstoreError as exc:  # 429 after too many failures, as the API (Retry-After)
        out = None
        error, status, headers = exc.detail, exc.status, exc.headers
    if out is None:
        page = _auth_page(
            request, "login.html", svc.settings, error=error, status_code=status,
            title="Sign in", next=target, email=form.get("email", ""),
        )  # fmt: skip
        page.headers.update(headers)
        return page
    await run_in_threadpool(_mark_session, db, out.token)
    return _signed_in(request, svc.settings, out.token, target)


@router.get("/register")
def register_page(request: Request, svc: Svc) -> Response:
    """The sign-up form."""
    return _auth_page(request, "register.html", svc.settings, title="Create your account")


@router.post("/register")
async def register_submit(request: Request, db: DB, svc: Svc) -> Response:
    """Create the account (the API's sign-up), then sign it in."""
    form = await read_form(request)
    try:
        check_form_token(request, form.get(CSRF_FIELD))
        body = RegisterIn(
            email=form.get("email", ""),
            name=form.get("name", ""),
            password=form.get("password", ""),
        )
        ua = request.headers.get("user-agent")
        ip = client_ip(request)
        out = await run_in_threadpool(login_limits.sign_up, db, svc, body, ua, ip)
    except ValidationError as exc:
        out = None
        error, status = _validation_message(exc, form.get("password", "")), 422
    except DocstoreError as exc:
        out = None
        error, status = exc.detail, exc.status
    if out is None:
        await run_in_threadpool(db.rollback)
        return _auth_page(
            request, "register.html", svc.settings, error=error, status_code=status,
            title="Create your account", email=form.get("email", ""), name=form.get("name", ""),
        )  # fmt: skip
    await run_in_threadpool(_mark_session, db, out.token)
    return _signed_in(request, svc.settings, out.token, "/folders/root")


@router.post("/logout")
async def logout(request: Request, db: DB, svc: Svc) -> Response:
    """Revoke the session token and drop the cookie."""
    form = await read_form(request)
    token = cookie_token(request)
    secure = is_secure(request, svc.settings.public_url)
    if token is not None:
        check_csrf(request, token, form.get(CSRF_FIELD, ""))

        def revoke() -> None:
            try:
                _, token_id = users.authenticate(db, token)
            except Unauthenticated:
                return
            users.logout(db, token_id)

        await run_in_threadpool(revoke)
    response = RedirectResponse("/login", status_code=303)
    clear_session(response, secure)
    return response


def _not_found(request: Request, user: User, token: str, what: str) -> Response:
    return render(
        request, "notfound.html", user=user, token=token, title="Not found", page="notfound",
        what=what, status_code=404,
    )  # fmt: skip


@router.get("/folders/{folder_id}")
def folder_page(folder_id: str, request: Request, db: DB) -> Response:
    """The folder browser."""
    session = session_user(request, db)
    if session is None:
        return to_login(request)
    user, token = session
    try:
        folder, level = folders.get(db, _actor(request, user), folder_id)
    except DocstoreError:
        return _not_found(request, user, token, "folder")
    is_root = folder.id == user.root_folder_id
    return render(
        request, "browser.html", user=user, token=token,
        title="My files" if is_root else folder.name, page="browser",
        data={"folder_id": folder.id, "is_root": is_root, "permission": level.name},
    )  # fmt: skip


@router.get("/documents/{document_id}")
def document_page(document_id: int, request: Request, db: DB) -> Response:
    """A document: preview, versions, comments, editing and sharing."""
    session = session_user(request, db)
    if session is None:
        return to_login(request)
    user, token = session
    try:
        doc, folder, level = get_document_for(db, _actor(request, user), document_id)
    except DocstoreError:
        return _not_found(request, user, token, "document")
    return render(
        request, "document.html", user=user, token=token, title=doc.name, page="document",
        data={"document_id": doc.id, "permission": level.name},
        lock=live_lock(db, doc.id, folder.path),
    )  # fmt: skip


def _simple_page(request: Request, db: Session, template: str, page: str, title: str) -> Response:
    session = session_user(request, db)
    if session is None:
        return to_login(request)
    user, token = session
    return render(request, template, user=user, token=token, title=title, page=page)


@router.get("/shared")
def shared_page(request: Request, db: DB) -> Response:
    """Documents and folders other people shared with me."""
    return _simple_page(request, db, "shared.html", "shared", "Shared with me")


@router.get("/groups")
def groups_page(request: Request, db: DB) -> Response:
    """The groups I am in: members, and for managers adding, removing and deleting."""
    return _simple_page(request, db, "groups.html", "groups", "Groups")


@router.get("/trash")
def trash_page(request: Request, db: DB) -> Response:
    """My deleted items: restore or delete forever."""
    return _simple_page(request, db, "trash.html", "trash", "Trash")


@router.get("/search")
def search_page(request: Request, db: DB, q: str = "") -> Response:
    """Search results for the header's box (the page's script asks GET /api/v1/search)."""
    session = session_user(request, db)
    if session is None:
        return to_login(request)
    user, token = session
    return render(
        request, "search.html", user=user, token=token, title="Search", page="search",
        search_q=q[:500], data={"q": q[:500]},
    )  # fmt: skip


@router.get("/activity")
def activity_page(request: Request, db: DB) -> Response:
    """The audit entries for my documents and my own actions."""
    return _simple_page(request, db, "activity.html", "activity", "Activity")


@router.get("/l/{token}")
def link_page(token: str, request: Request, db: DB) -> Response:
    """A shared link, for anyone (signed in or not)."""
    session = session_user(request, db)
    user, session_token = session if session else (None, None)
    return render(
        request, "link.html", user=user, token=session_token, title="Shared with you",
        page="link", data={"token": token},
    )  # fmt: skip


def _json_actor(request: Request, db: Session) -> Actor:
    session = session_user(request, db)
    if session is None:
        raise Unauthenticated()
    return _actor(request, session[0])


@router.get("/web/names")
def names(
    request: Request,
    db: DB,
    users: str | None = None,
    folders: str | None = None,
    documents: str | None = None,
    document_id: int | None = None,
) -> JSONResponse:
    """Display names for ids, limited to what the caller may see (see web.lookup)."""
    actor = _json_actor(request, db)
    body = {
        "users": lookup.user_names(db, actor, lookup.parse_ids(users), document_id),
        "folders": lookup.folder_names(db, actor, lookup.parse_ids(folders)),
        "documents": lookup.document_names(db, actor, lookup.parse_ids(documents)),
    }
    return JSONResponse(body, headers={"Cache-Control": "no-store"})


@router.get("/web/shared-flags/{folder_id}")
def shared_flags(folder_id: int, request: Request, db: DB) -> JSONResponse:
    """Which children of one of my folders are shared (for the badges)."""
    actor = _json_actor(request, db)
    body = sharing.shared_children(db, actor, folder_id)
    return JSONResponse(body, headers={"Cache-Control": "no-store"})


def install(app: FastAPI, settings: Settings) -> None:
    """Serve the UI at `/`, its assets under /static, and security headers everywhere."""
    app.include_router(router)
    app.mount("/static", UIStatic(directory=HERE / "static"), name="static")
    app.add_middleware(
        SecurityHeaders,  # type: ignore[arg-type]
        settings=settings,
        skip_csp_prefixes=(app.docs_url or "/api/v1/docs",),
    )
