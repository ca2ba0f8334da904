"""The account links (API.md "Accounts"): verifying an address, accepting an invitation,
resetting a forgotten password and changing the address. Each runs in the request's one
transaction: the token's use, the account change, the pending shares, the audit entry and
any mail commit together or not at all."""

from __future__ import annotations

import hashlib
import logging

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from docstore import throttle
from docstore.accounts.schemas import InvitationAcceptIn
from docstore.audit.service import Action, record
from docstore.context import Actor
from docstore.db import utcnow
from docstore.errors import Conflict, Forbidden, NotFound, RateLimited, ValidationFailed
from docstore.names import clean_display_name
from docstore.security import hash_password, verify_password
from docstore.sharing.runtime import grants_changed
from docstore.users import repository as user_repo
from docstore.users import service as users
from docstore.users import verification
from docstore.users.models import ApiToken, User
from docstore.users.schemas import TokenOut, UserOut

log = logging.getLogger(__name__)

HOUR = 3600
RESEND_PER_HOUR = 5
RESET_PER_ADDRESS_PER_HOUR = 20  # per client address: past it, 429
RESET_PER_ACCOUNT_PER_HOUR = 3  # per email: past it, still 202, but no more mail
EMAIL_CHANGE_FAILURES_PER_HOUR = 10


def _email_key(email: str) -> str:
    return hashlib.sha256(email.encode()).hexdigest()[:32]


def mark_verified(db: Session, actor: Actor, user: User, **details: object) -> None:
    """The account's address is proven: the pending shares to it apply now (the grant
    caches are told first), and EMAIL_VERIFIED is audited."""
    for owner_id in sorted(users.pending_share_owners(db, user.email)):
        grants_changed(db, owner_id, strict=False)
    user.email_verified = True
    db.flush()
    applied = users.apply_pending_shares(db, user)
    record(
        db,
        actor,
        Action.EMAIL_VERIFIED,
        user_id=user.id,
        details={"email": user.email, "shares_applied": applied, **details},
    )


def revoke_all_tokens(db: Session, user_id: int) -> None:
    """Every session and token of the account stops working at once."""
    db.execute(
        update(ApiToken)
        .where(ApiToken.user_id == user_id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
        .execution_options(synchronize_session=False)
    )


def verify_email(db: Session, actor: Actor, token: str) -> User:
    """`POST /auth/verify-email`: a sign-up's link proves its address; an email-change
    link makes the new address the account's (verified)."""
    row = verification.consume(db, token, ("verify", "email_change"))
    user = db.get(User, row.user_id, with_for_update=True) if row.user_id else None
    if user is None:
        raise verification.BadLink("This link is unknown, was used already or has expired.")
    if row.purpose == "verify":
        if user.email != row.email:  # the address changed since the link was sent
            raise verification.BadLink("This link is for an address the account no longer has.")
        if not user.email_verified:
            mark_verified(db, actor, user)
        return user
    holder = user_repo.by_email(db, row.email)
    if holder is not None and holder.id != user.id:
        raise users.EmailTaken()
    previous = user.email
    user.email = row.email
    try:
        with db.begin_nested():
            db.flush()
    except IntegrityError as exc:
        raise users.EmailTaken() from exc
    user.email_verified = False
    mark_verified(db, actor, user, previous_email=previous)
    return user


def resend_verification(db: Session, actor: Actor) -> None:
    """`POST /auth/verify-email/resend`: a new link, at most RESEND_PER_HOUR an hour."""
    assert actor.user_id is not None
    user = db.get_one(User, actor.user_id)
    if user.email_verified:
        return
    counted = throttle.for_session(db).count(f"verify-resend:{user.id}", HOUR)
    if counted > RESEND_PER_HOUR:
        raise RateLimited("Too many verification mails; try again later.", retry_after=HOUR)
    verification.send_verification(db, user)


def accept_invitation(
    db: Session,
    actor: Actor,
    token: str,
    body: InvitationAcceptIn | None,
    *,
    token_ttl_seconds: int,
    user_agent: str | None,
) -> TokenOut:
    """`POST /auth/invitations/{token}/accept`: the invited address is proven. Signed in as
    the account with that address, it is verified; otherwise `body` makes the account (or
    takes over an unverified one holding the address: the mailbox's owner proved it is
    theirs, the sign-up did not) with every earlier session revoked."""
    row = verification.consume(db, token, ("invite",))
    email = row.email
    holder = user_repo.by_email(db, email)
    if actor.user is not None:
        if actor.user.email != email:
            raise Forbidden("This invitation was sent to another address.")
        user = db.get_one(User, actor.user.id, with_for_update=True)
        if not user.email_verified:
            mark_verified(db, actor, user, via="invitation")
    elif body is None:
        raise ValidationFailed("Give a name and a password, or sign in with the invited address.")
    elif holder is not None and holder.email_verified:
        raise users.EmailTaken("An account with this address exists: sign in, then accept.")
    elif holder is not None:
        user = db.get_one(User, holder.id, with_for_update=True)
        user.name = clean_display_name(body.name)
        user.password_hash = hash_password(body.password)
        revoke_all_tokens(db, user.id)
        mark_verified(db, actor, user, via="invitation", reclaimed=True)
    else:
        user = users.create_user(db, email=email, name=body.name, password=body.password)
        mark_verified(db, actor, user, via="invitation")
    issued, token_row = users.issue_token(db, user, token_ttl_seconds, user_agent)
    return TokenOut(
        token=issued, expires_at=token_row.expires_at, user=UserOut.model_validate(user)
    )


def request_password_reset(db: Session, actor: Actor, email: str) -> None:
    """`POST /auth/password-reset`: the same answer whether or not the address has an
    account. Past RESET_PER_ADDRESS_PER_HOUR from one client address, 429; past
    RESET_PER_ACCOUNT_PER_HOUR for one email, no more mail (and still the same answer)."""
    email = users.normalise_email(email)
    limits = throttle.for_session(db)
    if actor.ip and limits.count(f"reset:ip:{actor.ip}", HOUR) > RESET_PER_ADDRESS_PER_HOUR:
        raise RateLimited("Too many password resets from this address.", retry_after=HOUR)
    if limits.count(f"reset:acct:{_email_key(email)}", HOUR) > RESET_PER_ACCOUNT_PER_HOUR:
        log.info("password reset for one address past its hourly limit: no mail")
        return
    user = user_repo.by_email(db, email)
    if user is not None and user.is_active:
        verification.send_password_reset(db, user)


def confirm_password_reset(db: Session, actor: Actor, token: str, password: str) -> None:
    """`POST /auth/password-reset/confirm`: the new password; every session and token of
    the account is revoked, other reset links retired, and the address counts as proven
    (the link reached its mailbox)."""
    row = verification.consume(db, token, ("reset",))
    user = db.get(User, row.user_id, with_for_update=True) if row.user_id else None
    if user is None or not user.is_active:
        raise verification.BadLink("This link is unknown, was used already or has expired.")
    user.password_hash = hash_password(password)
    verification.retire(db, user.id, "reset")
    revoke_all_tokens(db, user.id)
    record(db, actor, Action.PASSWORD_RESET, user_id=user.id)
    if not user.email_verified and user.email == row.email:
        mark_verified(db, actor, user, via="password_reset")


def admin_password_reset(db: Session, actor: Actor, user_id: int) -> None:
    """`POST /admin/users/{id}/password-reset`: mail the user a reset link (admin)."""
    users.require_admin(actor)
    user = db.get(User, user_id)
    if user is None:
        raise NotFound()
    verification.send_password_reset(db, user)


def admin_invite(db: Session, actor: Actor, email: str) -> None:
    """`POST /admin/invitations`: mail `email` an invitation to create an account, whether
    or not sign-up is open (409 when a verified account already has the address)."""
    users.require_admin(actor)
    assert actor.user is not None
    address = users.normalise_email(email)
    existing = user_repo.by_email(db, address)
    if existing is not None and existing.email_verified:
        raise Conflict("An account with this address exists already.")
    verification.send_admin_invitation(db, address, actor.user.name)


def request_email_change(db: Session, actor: Actor, email: str, password: str) -> None:
    """`POST /users/me/email`: mail the new address a link; it replaces the old one only
    once that link is followed (`verify_email`)."""
    assert actor.user_id is not None
    user = db.get_one(User, actor.user_id)
    limits = throttle.for_session(db)
    key = f"email-change:{user.id}"
    if limits.count(key, HOUR) > EMAIL_CHANGE_FAILURES_PER_HOUR:
        limits.count(key, HOUR, -1)
        raise RateLimited("Too many wrong passwords; try again later.", retry_after=HOUR)
    if not verify_password(user.password_hash, password):
        raise Forbidden("The password is wrong.")
    limits.count(key, HOUR, -1)
    new = users.normalise_email(email)
    if new == user.email:
        raise ValidationFailed("This is the account's address already.")
    if user_repo.by_email(db, new) is not None:
        raise users.EmailTaken()
    verification.send_email_change(db, user, new)
