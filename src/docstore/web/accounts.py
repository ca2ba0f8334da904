"""The pages the mailed links open (users.verification.PAGES) and the forgotten-password
form: plain HTML forms over the accounts service, like sign-in and sign-up. A link's token
is used only by the page's POST (a mail scanner fetching the link uses nothing), and the
forms carry the sign-in forms' CSRF token."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse
from starlette.concurrency import run_in_threadpool

from docstore.accounts import service as accounts
from docstore.accounts.schemas import InvitationAcceptIn
from docstore.config import Settings
from docstore.deps import DB, Svc, anonymous_actor
from docstore.errors import DocstoreError
from docstore.session_cookie import CSRF_FIELD, check_csrf, check_form_token
from docstore.users import passwords, verification
from docstore.web.routes import _auth_page, _mark_session, _signed_in, read_form, session_user

router = APIRouter(include_in_schema=False)


def _page(request: Request, settings: Settings, kind: str, title: str, **context: Any) -> Response:
    return _auth_page(request, "account_link.html", settings, title=title, kind=kind, **context)


def _done(
    request: Request, settings: Settings, title: str, message: str, **context: Any
) -> Response:
    context.setdefault("done", "Go to my files")
    context.setdefault("done_href", "/")
    return _page(request, settings, "done", title, message=message, **context)


@router.get("/verify-email")
def verify_page(request: Request, svc: Svc, token: str = "") -> Response:
    """The landing page of a verification (or email-change) link."""
    return _page(
        request, svc.settings, "verify", "Confirm your email address", link_token=token,
        message="One click, and documents shared with this address are yours to see.",
    )  # fmt: skip


@router.post("/verify-email")
async def verify_submit(request: Request, db: DB, svc: Svc) -> Response:
    """Use the link: the address is proven."""
    form = await read_form(request)
    try:
        check_form_token(request, form.get(CSRF_FIELD))
        actor = anonymous_actor(request)
        user = await run_in_threadpool(accounts.verify_email, db, actor, form.get("token", ""))
    except DocstoreError as exc:
        await run_in_threadpool(db.rollback)
        return _page(
            request, svc.settings, "verify", "Confirm your email address",
            link_token=form.get("token", ""), error=exc.detail, status_code=exc.status,
        )  # fmt: skip
    return _done(
        request, svc.settings, "Address confirmed", f"{user.email} is confirmed. Thank you!"
    )


@router.post("/web/verify-email/resend")
async def resend(request: Request, db: DB) -> Response:
    """The notice's button: mail a new verification link to the signed-in account."""
    form = await read_form(request)
    signed_in = await run_in_threadpool(session_user, request, db)
    if signed_in is None:
        return RedirectResponse("/login", status_code=303)
    user, token = signed_in
    check_csrf(request, token, form.get(CSRF_FIELD, ""))
    actor = anonymous_actor(request)
    actor.user = user
    try:
        await run_in_threadpool(accounts.resend_verification, db, actor)
        state = "sent"
    except DocstoreError:
        state = "later"
    back = form.get("next", "/")
    back = back if back.startswith("/") and not back.startswith("//") else "/"
    sep = "&" if "?" in back else "?"
    return RedirectResponse(f"{back}{sep}verification={state}", status_code=303)


@router.get("/forgot-password")
def forgot_page(request: Request, svc: Svc) -> Response:
    """Ask for a password-reset link."""
    return _page(
        request, svc.settings, "forgot", "Forgot your password?",
        message="Enter your address: if it has an account, we mail it a link to choose "
        "a new password.",
    )  # fmt: skip


@router.post("/forgot-password")
async def forgot_submit(request: Request, db: DB, svc: Svc) -> Response:
    """The same answer whether or not the address has an account."""
    form = await read_form(request)
    email = form.get("email", "")[:320]
    try:
        check_form_token(request, form.get(CSRF_FIELD))
        actor = anonymous_actor(request)
        await run_in_threadpool(accounts.request_password_reset, db, actor, email)
    except DocstoreError as exc:
        await run_in_threadpool(db.rollback)
        return _page(
            request, svc.settings, "forgot", "Forgot your password?", email=email,
            error=exc.detail, status_code=exc.status,
        )  # fmt: skip
    return _done(
        request, svc.settings, "Check your mail",
        f"If {email} has an account, a link to reset its password is on its way. "
        "It works once, within 30 minutes.",
        done="Back to sign in", done_href="/login",
    )  # fmt: skip


@router.get("/reset-password")
def reset_page(request: Request, svc: Svc, token: str = "") -> Response:
    """Choose a new password (from a reset link)."""
    return _page(request, svc.settings, "reset", "Choose a new password", link_token=token)


@router.post("/reset-password")
async def reset_submit(request: Request, db: DB, svc: Svc) -> Response:
    """Set the password; every session of the account ends."""
    form = await read_form(request)
    token, password = form.get("token", ""), form.get("password", "")
    error, status = passwords.problem(password), 422
    if error is None:
        try:
            check_form_token(request, form.get(CSRF_FIELD))
            actor = anonymous_actor(request)
            await run_in_threadpool(accounts.confirm_password_reset, db, actor, token, password)
        except DocstoreError as exc:
            error, status = exc.detail, exc.status
    if error is not None:
        await run_in_threadpool(db.rollback)
        return _page(
            request, svc.settings, "reset", "Choose a new password", link_token=token,
            error=error[:1].upper() + error[1:], status_code=status,
        )  # fmt: skip
    return _done(
        request, svc.settings, "Password changed",
        "Your password is changed and every session was signed out.",
        done="Sign in", done_href="/login",
    )  # fmt: skip


def _invited(db: Any, token: str) -> str | None:
    try:
        return verification.peek(db, token, ("invite",)).email
    except DocstoreError:
        return None


@router.get("/invitations/accept")
async def invitation_page(request: Request, db: DB, svc: Svc, token: str = "") -> Response:
    """Register through an invitation (or accept it as the signed-in invited account)."""
    email = await run_in_threadpool(_invited, db, token)
    if email is None:
        return _done(
            request, svc.settings, "Invitation", "This invitation is unknown, used or expired.",
            done="Sign in", done_href="/login", status_code=400,
        )  # fmt: skip
    signed_in = await run_in_threadpool(session_user, request, db)
    as_email = signed_in[0].email if signed_in and signed_in[0].email == email else None
    here = f"/invitations/accept?token={quote(token)}"
    return _page(
        request, svc.settings, "invite", "You are invited", link_token=token, email=email,
        signed_in_as=as_email, next=here,
        message=f"Documents were shared with {email}. Create your account to see them.",
    )  # fmt: skip


@router.post("/invitations/accept")
async def invitation_submit(request: Request, db: DB, svc: Svc) -> Response:
    """Accept: the account exists and is verified, the shares apply, the browser is signed in."""
    form = await read_form(request)
    token = form.get("token", "")
    error, status = None, 422
    body: InvitationAcceptIn | None = None
    actor = anonymous_actor(request)
    signed_in = await run_in_threadpool(session_user, request, db)
    invited = await run_in_threadpool(_invited, db, token)
    if signed_in is not None and invited is not None and signed_in[0].email == invited:
        actor.user = signed_in[0]
    else:
        error = passwords.problem(form.get("password", ""))
        if error is None and not form.get("name", "").strip():
            error = "enter your name"
        if error is None:
            body = InvitationAcceptIn(name=form["name"], password=form["password"])
    out = None
    if error is None:
        try:
            check_form_token(request, form.get(CSRF_FIELD))
            out = await run_in_threadpool(
                accounts.accept_invitation, db, actor, token, body,
                token_ttl_seconds=svc.settings.token_ttl_seconds,
                user_agent=request.headers.get("user-agent"),
            )  # fmt: skip
        except DocstoreError as exc:
            error, status = exc.detail, exc.status
    if out is None:
        await run_in_threadpool(db.rollback)
        return _page(
            request, svc.settings, "invite", "You are invited", link_token=token,
            email=invited or "", name=form.get("name", ""), next="/login",
            error=(error or "")[:1].upper() + (error or "")[1:], status_code=status,
        )  # fmt: skip
    await run_in_threadpool(_mark_session, db, out.token)
    return _signed_in(request, svc.settings, out.token, "/shared")
