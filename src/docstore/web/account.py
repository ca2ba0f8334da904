"""The web UI's Security page: change the password, see and end sessions, make app passwords.

Plain server-rendered forms (no script): each POST carries the page's CSRF token and runs
the same service functions as the API (`users.sessions`), in the request's transaction.
"""

from __future__ import annotations

from contextlib import suppress
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse
from pydantic import ValidationError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from docstore.context import Actor
from docstore.deps import DB, Svc, anonymous_actor
from docstore.errors import DocstoreError, NotFound, Unauthenticated
from docstore.session_cookie import CSRF_FIELD, check_csrf, clear_session, cookie_token, is_secure
from docstore.users import passwords, sessions
from docstore.users import service as users
from docstore.users.session_schemas import AppPasswordIn, PasswordChangeIn
from docstore.web.routes import read_form, render, to_login

router = APIRouter(include_in_schema=False)
# Enough for anyone's page; the API pages through more.
SHOWN = 200


def _signed_in(request: Request, db: Session) -> tuple[Actor, str] | None:
    """The caller (with the session's token id, to mark "this browser") and the token."""
    token = cookie_token(request)
    if token is None:
        return None
    actor = anonymous_actor(request)
    try:
        actor.user, actor.token_id = users.authenticate(db, token)
    except Unauthenticated:
        return None
    return actor, token


def _page(
    request: Request, db: Session, actor: Actor, token: str, status_code: int = 200, **extra: Any
) -> Response:
    items, _ = sessions.list_sessions(db, actor, SHOWN, None)
    response = render(
        request, "security.html", user=actor.user, token=token, title="Security",
        page="security", status_code=status_code,
        sessions=[s for s in items if s.kind == "session"],
        app_passwords=[s for s in items if s.kind == "app_password"],
        min_password=passwords.MIN_LENGTH, **extra,
    )  # fmt: skip
    response.headers["Cache-Control"] = "no-store"  # it may show a new app password
    return response


@router.get("/security")
def security_page(request: Request, db: DB) -> Response:
    """Password, sessions and app passwords of the signed-in account."""
    found = _signed_in(request, db)
    if found is None:
        return to_login(request)
    return _page(request, db, *found)


async def _form(request: Request, db: Session) -> tuple[Actor, str, dict[str, str]] | None:
    form = await read_form(request)
    found = await run_in_threadpool(_signed_in, request, db)
    if found is None:
        return None
    actor, token = found
    check_csrf(request, token, form.get(CSRF_FIELD, ""))
    return actor, token, form


def _password_reason(exc: ValidationError, new_password: str) -> str:
    fields = {str(e["loc"][0]) for e in exc.errors() if e.get("loc")}
    if "new_password" in fields:
        reason = passwords.problem(new_password) or "choose another password"
        return f"New password refused: {reason}."
    return "Enter your current password."


@router.post("/security/password")
async def change_password(request: Request, db: DB, svc: Svc) -> Response:
    """Change the password (the API's rule, limits and audit); other sessions end."""
    got = await _form(request, db)
    if got is None:
        return to_login(request)
    actor, token, form = got

    def work() -> Response:
        new = form.get("new_password", "")
        if new != form.get("confirm_password", ""):
            return _page(request, db, actor, token, 422, change_error="The new passwords differ.")
        try:
            body = PasswordChangeIn(
                current_password=form.get("current_password", ""), new_password=new
            )
            ended = sessions.change_password(
                db, svc, actor, body.current_password, body.new_password
            )
        except ValidationError as exc:
            error = _password_reason(exc, new)
            return _page(request, db, actor, token, 422, change_error=error)
        except DocstoreError as exc:  # wrong current password (403), too many tries (429)
            page = _page(request, db, actor, token, exc.status, change_error=exc.detail)
            page.headers.update(exc.headers)
            return page
        notice = f"Password changed. Signed out everywhere else ({ended} ended)."
        return _page(request, db, actor, token, notice=notice)

    return await run_in_threadpool(work)


@router.post("/security/app-passwords")
async def create_app_password(request: Request, db: DB) -> Response:
    """Make an app password and show it this once."""
    got = await _form(request, db)
    if got is None:
        return to_login(request)
    actor, token, form = got

    def work() -> Response:
        try:
            body = AppPasswordIn(name=form.get("name", ""))
        except ValidationError:
            error = "Give the app password a name of 1 to 100 characters."
            return _page(request, db, actor, token, 422, app_error=error)
        made = sessions.create_app_password(db, actor, body.name)
        return _page(request, db, actor, token, 201, created=made)

    return await run_in_threadpool(work)


@router.post("/security/sessions/{session_id}/revoke")
async def revoke(session_id: int, request: Request, db: DB, svc: Svc) -> Response:
    """End a session or app password; ending this browser's own session signs it out."""
    got = await _form(request, db)
    if got is None:
        return to_login(request)
    actor, _, _ = got
    await run_in_threadpool(_revoke, db, actor, session_id)
    if session_id == actor.token_id:
        response = RedirectResponse("/login", status_code=303)
        clear_session(response, is_secure(request, svc.settings.public_url))
        return response
    return RedirectResponse("/security", status_code=303)


def _revoke(db: Session, actor: Actor, session_id: int) -> None:
    # Gone already (another tab): the page shows what is left.
    with suppress(NotFound):
        sessions.revoke(db, actor, session_id)
