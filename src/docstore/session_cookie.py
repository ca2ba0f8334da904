"""The web UI's session cookie and its CSRF token.

The cookie carries an ordinary token from the token table (kind "session"). A request that
the cookie authenticates and that may change state must also carry the CSRF token: a
one-way derivation of the session token that only pages of this origin can read.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from fastapi import Request, Response

from docstore.errors import Forbidden

SESSION_COOKIE = "docstore_session"
# Double-submit token for the sign-in and sign-up forms, before any session exists.
FORM_COOKIE = "docstore_form"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class CsrfFailed(Forbidden):
    """A cookie-authenticated write without the page's CSRF token."""

    code, title = "csrf_failed", "The request lacks a valid CSRF token"


def cookie_token(request: Request) -> str | None:
    """The session token from the cookie, if any."""
    token = request.cookies.get(SESSION_COOKIE, "").strip()
    return token or None


def csrf_for(session_token: str) -> str:
    """The CSRF token of a session: unguessable without the HttpOnly session token."""
    return hashlib.sha256(b"docstore-csrf\0" + session_token.encode()).hexdigest()


def _same(a: str | None, b: str) -> bool:
    return a is not None and hmac.compare_digest(a.encode(), b.encode())


def check_csrf(request: Request, session_token: str, submitted: str | None = None) -> None:
    """403 unless a state-changing cookie request carries the session's CSRF token."""
    if request.method in SAFE_METHODS:
        return
    sent = submitted if submitted is not None else request.headers.get(CSRF_HEADER)
    if not _same(sent, csrf_for(session_token)):
        raise CsrfFailed("Reload the page and try again (the form's security token is stale).")


def is_secure(request: Request, public_url: str | None) -> bool:
    """Whether cookies must be `Secure`: the request came over HTTPS or the site is HTTPS."""
    return request.url.scheme == "https" or (public_url or "").startswith("https://")


def set_session(response: Response, token: str, max_age: int, secure: bool) -> None:
    """Set the session cookie: HttpOnly, SameSite=Lax, Secure behind HTTPS."""
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="lax",
        secure=secure,
    )


def clear_session(response: Response, secure: bool) -> None:
    """Remove the session cookie."""
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax", secure=secure)


def form_token(request: Request) -> str:
    """The sign-in form's double-submit token (reused while the cookie lives)."""
    current = request.cookies.get(FORM_COOKIE, "")
    return current if len(current) >= 32 else secrets.token_urlsafe(32)


def set_form_cookie(response: Response, token: str, secure: bool) -> None:
    """Keep the form token in an HttpOnly cookie that the form field must match."""
    response.set_cookie(
        FORM_COOKIE, token, max_age=3600, path="/", httponly=True, samesite="lax", secure=secure
    )


def check_form_token(request: Request, submitted: str | None) -> None:
    """403 unless the form field matches the form cookie (sign-in and sign-up CSRF)."""
    cookie = request.cookies.get(FORM_COOKIE)
    if not cookie or not _same(submitted, cookie):
        raise CsrfFailed("The form expired. Reload the page and try again.")
