"""Mailed single-use links (`account_tokens`) and the rule that an address counts only once
proven (API.md "Accounts", "Sharing").

A link's token is 256 random bits, stored as its SHA-256, used at most once (a conditional
UPDATE) and only before it expires. Purposes: `verify` (a sign-up's address), `invite` (a
share to an address no verified account holds), `reset` (a forgotten password) and
`email_change` (an account's new address). Pages under DOCSTORE_PUBLIC_URL take the token
(`/verify-email`, `/invitations/accept`, `/reset-password`) and call the API.
"""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import quote

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from docstore.config import Settings
from docstore.db import utcnow
from docstore.errors import BadRequest, Forbidden
from docstore.mail import service as mail
from docstore.security import new_token, token_digest
from docstore.users.models import AccountToken, User

VERIFY_TTL = timedelta(hours=48)
INVITE_TTL = timedelta(days=14)
RESET_TTL = timedelta(minutes=30)
EMAIL_CHANGE_TTL = timedelta(hours=24)

# Pages the mailed links open (docstore.web.accounts).
PAGES = {
    "verify": "/verify-email",
    "email_change": "/verify-email",
    "invite": "/invitations/accept",
    "reset": "/reset-password",
}


class EmailUnverified(Forbidden):
    """DOCSTORE_REQUIRE_VERIFIED_EMAIL: the account has not proven its address yet."""

    code, title = "email_unverified", "Verify your email address first"


class BadLink(BadRequest):
    """A mailed link that is unknown, used or expired (one answer for all three)."""

    title = "This link is invalid, used or expired"


def issue(
    db: Session, purpose: str, email: str, ttl: timedelta, user_id: int | None = None
) -> tuple[str, str]:
    """A new single-use token for `purpose`, and the absolute link that carries it."""
    token = new_token()
    db.add(
        AccountToken(
            purpose=purpose,
            user_id=user_id,
            email=email,
            token_hash=token_digest(token),
            expires_at=utcnow() + ttl,
        )
    )
    db.flush()
    return token, mail.link(db, f"{PAGES[purpose]}?token={quote(token)}")


def peek(db: Session, token: str, purposes: tuple[str, ...]) -> AccountToken:
    """The live (unused, unexpired) token row, or 400 `bad_request`; it stays unused."""
    row = db.scalar(
        select(AccountToken).where(
            AccountToken.token_hash == token_digest(token), AccountToken.purpose.in_(purposes)
        )
    )
    if row is None or row.used_at is not None or row.expires_at <= utcnow():
        raise BadLink("This link is unknown, was used already or has expired.")
    return row


def consume(db: Session, token: str, purposes: tuple[str, ...]) -> AccountToken:
    """`peek`, then mark the token used in one conditional UPDATE: of two requests with the
    same link, one wins. The use rolls back with the caller's transaction."""
    row = peek(db, token, purposes)
    now = utcnow()
    done = db.execute(
        update(AccountToken)
        .where(AccountToken.id == row.id, AccountToken.used_at.is_(None))
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    if done.rowcount != 1:  # type: ignore[attr-defined]
        raise BadLink("This link is unknown, was used already or has expired.")
    row.used_at = now
    return row


def retire(db: Session, user_id: int, purpose: str) -> None:
    """Mark the account's other live links of `purpose` used (a reset makes older ones moot)."""
    db.execute(
        update(AccountToken)
        .where(
            AccountToken.user_id == user_id,
            AccountToken.purpose == purpose,
            AccountToken.used_at.is_(None),
        )
        .values(used_at=utcnow())
        .execution_options(synchronize_session=False)
    )


def send_verification(db: Session, user: User) -> None:
    """Mail `user` a link that proves their address (in the caller's transaction)."""
    _, link = issue(db, "verify", user.email, VERIFY_TTL, user.id)
    mail.enqueue(
        db,
        to=user.email,
        template="verify_email",
        context={
            "name": user.name,
            "email": user.email,
            "link": link,
            "hours": int(VERIFY_TTL.total_seconds() // 3600),
        },
    )


def send_invitation(db: Session, email: str, inviter: str, item_name: str) -> None:
    """Mail `email` an invitation to claim what was shared with it."""
    _, link = issue(db, "invite", email, INVITE_TTL)
    mail.enqueue(
        db,
        to=email,
        template="invitation",
        context={
            "email": email,
            "inviter": inviter,
            "item_name": item_name,
            "link": link,
            "days": INVITE_TTL.days,
        },
    )


def send_admin_invitation(db: Session, email: str, inviter: str) -> None:
    """Mail `email` an invitation to create an account (an administrator's; works when
    sign-up is closed)."""
    _, link = issue(db, "invite", email, INVITE_TTL)
    mail.enqueue(
        db,
        to=email,
        template="admin_invitation",
        context={"email": email, "inviter": inviter, "link": link, "days": INVITE_TTL.days},
    )


def send_password_reset(db: Session, user: User) -> None:
    """Mail `user` a password-reset link (30 minutes, single use)."""
    _, link = issue(db, "reset", user.email, RESET_TTL, user.id)
    mail.enqueue(
        db,
        to=user.email,
        template="password_reset",
        context={
            "name": user.name,
            "email": user.email,
            "link": link,
            "minutes": int(RESET_TTL.total_seconds() // 60),
        },
    )


def send_email_change(db: Session, user: User, new_email: str) -> None:
    """Mail the new address a link that makes it the account's once followed."""
    _, link = issue(db, "email_change", new_email, EMAIL_CHANGE_TTL, user.id)
    mail.enqueue(
        db,
        to=new_email,
        template="email_change",
        context={
            "name": user.name,
            "email": new_email,
            "old_email": user.email,
            "link": link,
            "hours": int(EMAIL_CHANGE_TTL.total_seconds() // 3600),
        },
    )


# What an unverified account may still do under DOCSTORE_REQUIRE_VERIFIED_EMAIL (paths
# under /api/v1; signing in and registering need no token and are always open).
UNVERIFIED_ALLOWED = {
    ("POST", "/api/v1/auth/logout"),
    ("POST", "/api/v1/auth/verify-email"),
    ("POST", "/api/v1/auth/verify-email/resend"),
    ("GET", "/api/v1/users/me"),
}
_INVITATION_ACCEPT = ("/api/v1/auth/invitations/", "/accept")


def require_verified(settings: Settings, user: User | None, method: str, path: str) -> None:
    """403 `email_unverified` when the setting asks for proven addresses and `user` has
    none, unless the request is one an unverified account may make."""
    if user is None or user.email_verified or not settings.require_verified_email:
        return
    if (method, path) in UNVERIFIED_ALLOWED:
        return
    start, end = _INVITATION_ACCEPT
    if method == "POST" and path.startswith(start) and path.endswith(end):
        return
    raise EmailUnverified(
        "This server requires a verified email address: follow the link mailed to you, "
        "or ask for a new one (POST /auth/verify-email/resend)."
    )
