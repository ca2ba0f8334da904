"""Accounts: sign-up, login, bearer tokens, administration and plans."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, and_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from docstore.audit.service import Action, record
from docstore.changes import service as changes
from docstore.context import Actor
from docstore.db import READ_ONLY, utcnow
from docstore.db.sql import insert_new
from docstore.errors import Conflict, Forbidden, NotFound, Unauthenticated, ValidationFailed
from docstore.folders.service import create_root
from docstore.names import clean_display_name, display_name_for_names
from docstore.security import hash_password, new_token, token_digest, verify_password
from docstore.sharing.models import Share
from docstore.users import repository as repo
from docstore.users.models import ApiToken, Plan, User

DEFAULT_PLAN = "free"
DEFAULT_PLAN_LIMITS = {"quota_bytes": 10 * 1024**3, "max_versions": 100, "retention_days": 30}


class EmailTaken(Conflict):
    """An account with this email exists already."""

    code, title = "email_taken", "An account with this email already exists"


class LoginFailed(Unauthenticated):
    """Wrong email or password (the same answer for both); `user_id` names the targeted
    account when the email has one, for the audit entry only."""

    def __init__(self, user_id: int | None) -> None:
        super().__init__("Wrong email or password.")
        self.user_id = user_id


def normalise_email(email: str) -> str:
    """Emails compare case-insensitively."""
    return email.strip().lower()


def ensure_default_plan(db: Session) -> Plan:
    """The `free` plan exists (10 GiB, 100 versions, 30 days) unless an admin changed it."""
    plan = db.get(Plan, DEFAULT_PLAN)
    if plan is None:
        # Processes that start together all find none: the first insert creates it, the
        # others' add nothing (tests/cluster: a worker crashed here on a duplicate key).
        db.execute(insert_new(db, Plan).values(name=DEFAULT_PLAN, **DEFAULT_PLAN_LIMITS))
        plan = db.get(Plan, DEFAULT_PLAN)
        assert plan is not None
    return plan


def create_user(
    db: Session,
    *,
    email: str,
    name: str,
    password: str,
    plan_name: str | None = None,
    quota_bytes: int | None = None,
    is_admin: bool = False,
    email_verified: bool = False,
) -> User:
    """A new account with its root folder. Pending email shares apply to it only when its
    address is `email_verified` (an admin vouched for it, or a mailed link proved it):
    registering an address proves nothing (API.md "Sharing")."""
    email = normalise_email(email)
    # Checked before anything else: a display name ends up in server-built item names.
    name = clean_display_name(name) if name.strip() else display_name_for_names(email)
    plan = ensure_default_plan(db) if plan_name in (None, DEFAULT_PLAN) else db.get(Plan, plan_name)
    if plan is None:
        raise ValidationFailed(f"There is no plan named {plan_name!r}.")
    if repo.by_email(db, email) is not None:
        raise EmailTaken()
    user = User(
        email=email,
        name=name,
        password_hash=hash_password(password),
        plan_name=plan.name,
        quota_bytes=plan.quota_bytes if quota_bytes is None else quota_bytes,
        used_bytes=0,
        is_admin=is_admin,
        email_verified=email_verified,
    )
    db.add(user)
    try:
        with db.begin_nested():
            db.flush()
    except IntegrityError as exc:
        raise EmailTaken() from exc
    create_root(db, user)
    if email_verified:
        apply_pending_shares(db, user)
    return user


def pending_share_owners(db: Session, email: str) -> set[int]:
    """Who made the pending shares to `email` (their items' owners: sharing is owner-only)."""
    return set(
        db.scalars(
            select(Share.created_by).where(
                Share.shared_with_email == email, Share.shared_with_user_id.is_(None)
            )
        )
    )


def apply_pending_shares(db: Session, user: User) -> int:
    """Give `user` the pending shares made to their (now verified) address; how many. For an
    account that existed before, the caller tells the grant caches first
    (`sharing.runtime.grants_changed` for `pending_share_owners`)."""
    pending = and_(Share.shared_with_email == user.email, Share.shared_with_user_id.is_(None))
    seen = changes.watch(db, changes.shared_items(db, pending))
    result = db.execute(
        update(Share)
        .where(pending)
        .values(shared_with_user_id=user.id, kind="user")
        .execution_options(synchronize_session=False)
    )
    changes.settle(db, None, seen)  # the new account's `access_gained`
    return int(result.rowcount)  # type: ignore[attr-defined]


def issue_token(
    db: Session,
    user: User,
    ttl_seconds: int | None,
    user_agent: str | None,
    *,
    ip_address: str | None = None,
    kind: str = "api",
    name: str | None = None,
) -> tuple[str, ApiToken]:
    """A new bearer token; only its digest is stored. `ttl_seconds=None`: no expiry (app
    passwords). A sign-in counts as a use; an app password is first used later."""
    token = new_token()
    now = utcnow()
    row = ApiToken(
        user_id=user.id,
        token_hash=token_digest(token),
        kind=kind,
        name=name,
        created_at=now,
        expires_at=None if ttl_seconds is None else now + timedelta(seconds=ttl_seconds),
        last_used_at=None if kind == "app_password" else now,
        user_agent=(user_agent or "")[:512] or None,
        ip_address=(ip_address or "")[:64] or None,
    )
    db.add(row)
    db.flush()
    return token, row


def login(db: Session, actor: Actor, email: str, password: str) -> User:
    """The user whose password this is, or 401 (LoginFailed) with the same answer for any
    failure."""
    user = repo.by_email(db, normalise_email(email))
    ok = verify_password(user.password_hash if user else None, password)
    if user is None or not ok or not user.is_active:
        raise LoginFailed(user.id if user else None)
    record(db, actor, Action.LOGIN, user_id=user.id)
    return user


def authenticate(db: Session, token: str) -> tuple[User, int]:
    """The user behind a bearer token and the token's id, or 401 when it is unknown,
    expired or revoked."""
    return check_token(db, repo.token_and_user(db, token_digest(token)))


def check_token(db: Session, row: Row[Any] | None) -> tuple[User, int]:
    """The user and token id from a row of `repository.TOKEN_COLUMNS` (None: no such
    token), or 401 when the token is expired or revoked or its user disabled. A good
    token's last use is noted (`note_use`)."""
    if row is None:
        raise Unauthenticated("The token is invalid or has expired.")
    token, user = repo.token_from_row(row)
    now = utcnow()
    expired = token.expires_at is not None and token.expires_at <= now
    if token.revoked_at is not None or expired or not user.is_active:
        raise Unauthenticated("The token is invalid or has expired.")
    note_use(db, token.id, token.last_used_at, now)
    return user, token.id


# How stale a token's `last_used_at` may get: it is written at most once per interval, so
# nearly every authenticated request writes nothing for it.
TOUCH_INTERVAL = timedelta(seconds=60)
# session.info key: tokens a read transaction used whose `last_used_at` is stale.
USES_KEY = "docstore.users.token_uses"


def note_use(db: Session, token_id: int, last_used_at: datetime | None, now: datetime) -> None:
    """Refresh a token's `last_used_at` when it is older than `TOUCH_INTERVAL`: in a
    write transaction at once (one conditional UPDATE), in a read-only one by the caller
    after it (`deferred_uses`; deps hands them to the audit group commit)."""
    if last_used_at is not None and last_used_at > now - TOUCH_INTERVAL:
        return
    if db.info.get(READ_ONLY):
        db.info.setdefault(USES_KEY, []).append(token_id)
        return
    repo.touch_tokens(db, [token_id], now, now - TOUCH_INTERVAL)


def deferred_uses(db: Session) -> list[int]:
    """The tokens a read transaction used whose last use is still to be written."""
    ids: list[int] = db.info.get(USES_KEY, [])
    return ids


def touch_later(token_ids: list[int]) -> Callable[[Session], None]:
    """`deferred_uses` as work for another transaction (the audit group commit's)."""

    def touch(db: Session) -> None:
        now = utcnow()
        repo.touch_tokens(db, token_ids, now, now - TOUCH_INTERVAL)

    return touch


def logout(db: Session, token_id: int) -> None:
    """Revoke one token at once."""
    db.execute(
        update(ApiToken)
        .where(ApiToken.id == token_id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )


def require_admin(actor: Actor) -> None:
    """403 unless the caller is an administrator."""
    if not actor.is_admin:
        raise Forbidden("Administrators only.")


def admin_update(
    db: Session,
    user_id: int,
    *,
    quota_bytes: int | None = None,
    plan_name: str | None = None,
    is_admin: bool | None = None,
) -> User:
    """Change a user's plan, quota or admin flag; a new plan brings its default quota."""
    user = db.get(User, user_id)
    if user is None:
        raise NotFound()
    if plan_name is not None:
        plan = db.get(Plan, plan_name)
        if plan is None:
            raise ValidationFailed(f"There is no plan named {plan_name!r}.")
        user.plan_name = plan.name
        if quota_bytes is None:
            user.quota_bytes = plan.quota_bytes
    if quota_bytes is not None:
        user.quota_bytes = quota_bytes
    if is_admin is not None:
        user.is_admin = is_admin
    db.flush()
    return user


def list_users(db: Session) -> list[User]:
    """Every account, oldest first."""
    return list(db.scalars(select(User).order_by(User.id)))


def list_plans(db: Session) -> list[Plan]:
    """Every plan, by name."""
    ensure_default_plan(db)
    return list(db.scalars(select(Plan).order_by(Plan.name)))


def put_plan(
    db: Session, name: str, quota_bytes: int, max_versions: int, retention_days: int
) -> Plan:
    """Create or replace a plan."""
    if not name or len(name) > 64 or not name.replace("-", "").replace("_", "").isalnum():
        raise ValidationFailed("A plan name is 1-64 letters, digits, '-' or '_'.")
    plan = db.get(Plan, name)
    if plan is None:
        plan = Plan(
            name=name,
            quota_bytes=quota_bytes,
            max_versions=max_versions,
            retention_days=retention_days,
        )
        db.add(plan)
    else:
        plan.quota_bytes = quota_bytes
        plan.max_versions = max_versions
        plan.retention_days = retention_days
        plan.updated_at = utcnow()
    db.flush()
    return plan


def bootstrap_admin(db: Session, email: str, password: str) -> User:
    """Make sure the configured admin account exists and is an administrator."""
    ensure_default_plan(db)
    user = repo.by_email(db, normalise_email(email))
    if user is None:
        return create_user(
            db,
            email=email,
            name="Administrator",
            password=password,
            is_admin=True,
            email_verified=True,
        )
    if not user.is_admin:
        user.is_admin = True
    if not user.email_verified:  # the operator named this address
        user.email_verified = True
        apply_pending_shares(db, user)
    if not verify_password(user.password_hash, password):
        user.password_hash = hash_password(password)
    db.flush()
    return user
